//! `fieldsync-server`: the HQ server.
//!
//! With no arguments it serves: data in `./data` (HQ's key and the admin
//! token are generated there on first start and the public key printed),
//! QUIC sync on `127.0.0.1:4433` (`sync`), health and the admin API
//! (`http`) on `127.0.0.1:8080`. `issue` creates a device credential and
//! prints the enrollment string the device imports with `field enroll`;
//! `revoke` signs a new revocation list; `admin-token` replaces the admin
//! token. HQ's identity and credential register: `register`.

mod accounts;
mod briefing;
mod export;
mod http;
mod metrics;
mod photos;
mod read;
mod register;
mod sync;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};

/// With glibc's allocator HQ spent about a fifth of the burst's CPU in
/// malloc and free (`perf`, `scripts/bench-sync`); mimalloc keeps
/// per-thread heaps. Built without transparent huge pages (`no_thp`): with
/// them the burst's peak RSS nearly doubled.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Documents HQ keeps in memory at most (least recently used go first).
/// A dossier of 50 findings is on the order of 100 KB in memory.
const DOC_CACHE: usize = 128;

/// FieldSync 总部服务器
#[derive(Parser)]
#[command(name = "fieldsync-server", version)]
struct Cli {
    /// 数据目录
    #[arg(long, env = "FIELDSYNC_DATA", default_value = "data", global = true)]
    data: PathBuf,
    /// 日志格式：text（默认）或 json（每行一个 JSON 对象，便于日志系统收集）
    #[arg(
        long,
        env = "FIELDSYNC_LOG_FORMAT",
        default_value = "text",
        global = true,
        value_parser = ["text", "json"],
        value_name = "格式"
    )]
    log_format: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// 启动服务（默认）
    Serve(ServeArgs),
    /// 显示总部公钥
    Key,
    /// 为设备签发凭证，输出入网码
    Issue(IssueArgs),
    /// 吊销凭证或设备（签发新的吊销名单，随同步传到各设备和安监站）
    Revoke {
        /// 凭证编号（可多次）
        #[arg(long)]
        serial: Vec<u64>,
        /// 设备公钥（吊销该设备的全部凭证，可多次）
        #[arg(long)]
        device: Vec<String>,
    },
    /// 重新生成管理接口令牌（旧令牌立即失效），写入数据目录的 admin.token（仅所有者可读）
    AdminToken {
        /// 同时把新令牌打印到标准输出（默认不打印，以免进入服务日志）
        #[arg(long)]
        print: bool,
    },
    /// 被隔离的修改（签名有效，但会使文档无效或作者凭证已被吊销，未写入文档）：列出或决定
    Quarantine {
        #[command(subcommand)]
        action: Option<QuarantineAction>,
    },
    /// 由已存储的文档重建读模型（需先停止服务）
    Reindex,
    /// 导出检查活动的隐患台账（服务运行时也可导出）
    Export(ExportArgs),
    /// 生成检查活动的通报培训会材料（可编辑的 .pptx），每个文件附总部签名清单（服务运行时也可生成）
    Briefing {
        /// 检查活动编号（cmp- 开头）
        #[arg(value_name = "活动编号")]
        campaign: String,
        /// 输出目录（默认：数据目录下的“通报培训会-<活动编号>”）
        #[arg(long, value_name = "目录")]
        out: Option<PathBuf>,
    },
    /// 核验通报材料文件：总部签名、签名清单和文件内容是否一致；不一致时指出改动之处
    VerifyBriefing {
        /// 要核验的文件（其签名清单 .manifest.json 和签名 .sig 须在同一目录）
        #[arg(value_name = "文件")]
        file: PathBuf,
        /// 信任的总部公钥（默认：数据目录中总部的公钥）
        #[arg(long, value_name = "公钥")]
        hq_key: Option<String>,
    },
    /// 总部控制台的用户：添加或列出（服务运行时也可操作）
    User {
        #[command(subcommand)]
        action: UserAction,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// 添加用户；密码从标准输入读一行（至少 10 个字符）
    Add {
        /// 用户名（登录时输入）
        #[arg(value_name = "用户名")]
        name: String,
        /// 设为管理员（另可管理用户、设备和凭证）；默认为分析员
        #[arg(long)]
        admin: bool,
    },
    /// 列出用户
    List,
}

#[derive(Subcommand)]
enum QuarantineAction {
    /// 列出全部隔离记录及其决定（默认；服务运行时也可列出）
    List,
    /// 接收：认定为作者凭证吊销前的工作，重新核验后写入文档并随同步下发（需先停止服务，或用管理接口）
    Accept(DecideArgs),
    /// 拒收：永不写入；安监站等再次送来时会被告知已拒收（需先停止服务，或用管理接口）
    Reject(DecideArgs),
}

#[derive(Args)]
struct DecideArgs {
    /// 隔离记录编号（列表中 # 后的数字）
    #[arg(value_name = "编号")]
    id: i64,
    /// 决定人姓名
    #[arg(long)]
    by: String,
    /// 决定理由
    #[arg(long)]
    note: String,
}

#[derive(Args, Default)]
struct ServeArgs {
    /// HTTP 监听地址
    #[arg(long, env = "FIELDSYNC_HTTP", default_value = "127.0.0.1:8080")]
    http: Option<SocketAddr>,
    /// QUIC 同步监听地址
    #[arg(long, env = "FIELDSYNC_QUIC", default_value = "127.0.0.1:4433")]
    quic: Option<SocketAddr>,
    /// 另开一个只监听本机回环地址的指标端口（/metrics 不需令牌），如 127.0.0.1:9464
    #[arg(long, env = "FIELDSYNC_METRICS_LISTEN", value_name = "地址")]
    metrics_listen: Option<SocketAddr>,
}

#[derive(Args)]
struct ExportArgs {
    /// 检查活动编号（cmp- 开头）
    #[arg(long)]
    campaign: String,
    /// csv / xlsx / json / zip（台账连同照片）
    #[arg(long, default_value = "xlsx")]
    format: String,
    /// 输出文件（默认：数据目录下的“隐患台账-<活动名称>.<格式>”）
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct IssueArgs {
    /// 设备公钥（设备上 field whoami 显示）
    #[arg(long)]
    device: String,
    /// 姓名或站点名称
    #[arg(long)]
    name: String,
    /// inspector（检查员）/ station（安监站）/ hq（总部）/ enterprise（企业）
    #[arg(long, default_value = "inspector")]
    role: String,
    /// 限定检查活动（可多次；不填为全部）
    #[arg(long)]
    campaign: Vec<String>,
    /// 限定企业统一社会信用代码（可多次；不填为全部）
    #[arg(long)]
    enterprise: Vec<String>,
    /// 有效天数
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// 写入入网码的同步地址
    #[arg(long, default_value = "127.0.0.1:4433")]
    server: String,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn issue(data: &std::path::Path, args: IssueArgs) -> Result<()> {
    let form = register::IssueForm {
        device: args.device,
        name: args.name,
        role: args.role,
        campaigns: args.campaign,
        enterprises: args.enterprise,
        days: i64::from(args.days),
        server: args.server,
    };
    let enrollment = register::Hq::open(data)?.issue(form, now_ms())?;
    let credential = enrollment.credential.credential();
    eprintln!(
        "已签发凭证 {}（{}），有效期 {} 天。请在设备上执行：field enroll <入网码>",
        credential.serial,
        credential.role.label(),
        args.days
    );
    println!("{enrollment}");
    Ok(())
}

/// `serve`: opens HQ's register and store (their files, before the async
/// runtime starts: no SQLite call runs on its workers), then serves until
/// Ctrl-C or SIGTERM.
fn serve(data: &std::path::Path, args: ServeArgs) -> Result<()> {
    let mut hq = register::Hq::open(data)?;
    let credential = hq.own_credential(data, now_ms())?;
    let console = sync::Console::new(hq.console_key(data, now_ms())?)?;
    let token_created = hq.ensure_admin_token(data, now_ms())?;
    let store_dir = data.join("sync");
    let mut store = if store_dir.join("device.key").exists() {
        field_client::Store::open(&store_dir)?
    } else {
        field_client::Store::init_with_seed(&store_dir, "总部", hq.seed())?
    };
    // HQ holds every campaign: documents load when a session needs them.
    store.set_cache_limit(DOC_CACHE);
    let (read, fresh) = read::ReadModel::open(data)?;
    if fresh {
        let count = read.rebuild(&mut store)?;
        println!("读模型已由 {count} 份文档建立");
    } else {
        let count = read.catch_up(&mut store)?;
        if count > 0 {
            println!("读模型已补上上次停止时未更新的 {count} 份文档");
        }
    }
    let read = Arc::new(read);
    let projector = read.clone();
    let metrics = Arc::new(metrics::Metrics::new(read.lag()));
    let counted = metrics.clone();
    let durable: sync::Durably = Arc::new(move |seq, doc, typed, heads| {
        counted.receipt();
        projector.durable(seq, doc, typed, heads);
    });
    let replica = sync::HqReplica::new(store, sync_core::identity::DeviceKey::from_seed(hq.seed()), durable)?;
    read.set_source(Box::new(replica.clone()));
    let photo_read = read.clone();
    let heard: photos::Read = Box::new(move |photo, meta| photo_read.photo_read(photo, meta));
    let deriver = Arc::new(photos::Deriver::start(store_dir, photos::Copies::at(data), heard)?);
    let replica = replica.with_photo_hook(Arc::new(move |photo| deriver.arrived(photo)));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let replica = replica.with_console(console);
    let served = Served { hq, replica, read, metrics, credential, token_created };
    runtime.block_on(run_server(data, args, served))
}

/// `export`: the register of a campaign from the read model, read-only (the
/// server may be running).
fn export_register(data: &std::path::Path, args: ExportArgs) -> Result<()> {
    let format = export::ExportFormat::parse(&args.format)
        .ok_or_else(|| anyhow::anyhow!("导出格式无效：{}（应为 csv / xlsx / json / zip）", args.format))?;
    let campaign: sync_core::ids::DocId =
        args.campaign.parse().map_err(|_| anyhow::anyhow!("检查活动编号无效：{}", args.campaign))?;
    let conn = read::reader_at(data)?;
    let register = read::query::register(&conn, campaign.as_str())?
        .ok_or_else(|| anyhow::anyhow!("总部没有检查活动 {campaign}（fieldsync-server 的读模型中没有）"))?;
    let bytes = export::register(&register, format, &data.join("sync"))?;
    let out = args.out.unwrap_or_else(|| data.join(export::file_name(&register, format)));
    std::fs::write(&out, bytes).map_err(|e| anyhow::anyhow!("无法写入 {}：{e}", out.display()))?;
    let rows: usize = register.enterprises.iter().map(|(_, rows)| rows.len()).sum();
    println!("已导出隐患台账：{rows} 条隐患，{} 家企业 → {}", register.enterprises.len(), out.display());
    Ok(())
}

/// `briefing`: the campaign's briefing files, signed.
fn make_briefing(data: &std::path::Path, campaign: &str, out: Option<PathBuf>) -> Result<()> {
    let id: sync_core::ids::DocId =
        campaign.trim().parse().map_err(|_| anyhow::anyhow!("检查活动编号无效：{campaign}"))?;
    let out = out.unwrap_or_else(|| data.join(format!("通报培训会-{id}")));
    let started = std::time::Instant::now();
    let written = briefing::write(data, &id, &out)?;
    println!(
        "已生成通报培训会材料（{} 页，其中典型隐患 {} 页，用时 {:.1} 秒）：",
        written.slides,
        written.typical,
        started.elapsed().as_secs_f64()
    );
    for file in &written.files {
        println!("  {}（附签名清单 .manifest.json 和签名 .sig）", file.display());
    }
    Ok(())
}

/// `verify-briefing`: a briefing file against its signed manifest.
fn verify_briefing(data: &std::path::Path, file: &std::path::Path, hq_key: Option<&str>) -> Result<()> {
    let hq: sync_core::identity::DevicePublicKey = match hq_key {
        Some(key) => key.trim().parse().map_err(|_| anyhow::anyhow!("总部公钥无效：{key}"))?,
        None if data.join("hq.key").exists() => register::Hq::open(data)?.public_key(),
        None => anyhow::bail!("数据目录 {} 中没有总部密钥：请用 --hq-key 给出信任的总部公钥", data.display()),
    };
    let manifest = briefing::manifest::verify(file, &hq).map_err(|e| anyhow::anyhow!("核验失败：{e}"))?;
    println!("核验通过：{} 由总部 {} 签名，内容未被改动。", file.display(), manifest.hq);
    println!(
        "生成依据：检查活动 {} 的 {} 个文档（各文档的版本见签名清单）。",
        manifest.campaign,
        manifest.documents.len()
    );
    Ok(())
}

/// `quarantine list`: HQ's quarantine, read-only (the server may be running).
fn list_quarantine(data: &std::path::Path) -> Result<()> {
    let store = data.join("sync");
    let rows = field_client::quarantined(&store)?;
    if rows.is_empty() {
        println!("没有被隔离的修改。");
    }
    for q in rows {
        let changes = q.changes.map_or(String::new(), |n| format!("{n} 个修改，"));
        let status = match &q.decision {
            None => "待决定".to_owned(),
            Some(d) => format!(
                "{}（{}，{}：{}）",
                sync::outcome_label(&d.outcome),
                d.by,
                sync_core::doc::rfc3339(d.at),
                d.note
            ),
        };
        println!(
            "#{} [{status}] {} 文档 {}，来自设备 {}（{changes}{} 字节）：{}",
            q.id,
            sync_core::doc::rfc3339(q.received_at),
            q.doc,
            q.source,
            q.batch_bytes,
            q.reason
        );
    }
    Ok(())
}

/// `quarantine accept|reject`: a decision, written to HQ's store as the
/// running server's API would (the read model catches up at the next start).
fn decide(data: &std::path::Path, verdict: sync::Verdict, args: DecideArgs) -> Result<()> {
    let store = open_stopped(data, "决定隔离记录（服务运行时请用管理接口 POST /api/v1/quarantine/<编号>/decision）")?;
    let hq = register::Hq::open(data)?;
    let replica =
        sync::HqReplica::new(store, sync_core::identity::DeviceKey::from_seed(hq.seed()), Arc::new(|_, _, _, _| {}))?
            .with_register(Arc::new(Mutex::new(hq)));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let outcome = runtime.block_on(replica.decide(args.id, verdict, &args.by, &args.note))?;
    println!("隔离记录 #{}：{}", args.id, sync::outcome_label(outcome));
    Ok(())
}

/// HQ's store, opened while the server is stopped (it holds the store).
fn open_stopped(data: &std::path::Path, doing: &str) -> Result<field_client::Store> {
    let store_dir = data.join("sync");
    if !store_dir.join("device.key").exists() {
        anyhow::bail!("{} 中还没有总部数据", data.display());
    }
    match field_client::Store::open(&store_dir) {
        Err(field_client::StoreError::Locked(_)) => {
            anyhow::bail!("总部服务正在使用 {}：请先停止服务，再{doing}", data.display())
        }
        other => Ok(other?),
    }
}

/// `user`: the console's accounts, in the register's database (the server
/// may be running).
fn user(data: &std::path::Path, action: UserAction) -> Result<()> {
    drop(register::Hq::open(data)?);
    let accounts = accounts::Accounts::open(data)?;
    match action {
        UserAction::Add { name, admin } => {
            use std::io::IsTerminal as _;
            let role = if admin { accounts::Role::Admin } else { accounts::Role::Analyst };
            if std::io::stdin().is_terminal() {
                eprint!("请输入 {} 的密码（至少 10 个字符，输入时会显示）：", name.trim());
            }
            let mut password = String::new();
            std::io::stdin().read_line(&mut password).context("无法从标准输入读取密码")?;
            let password = password.trim_end_matches(['\r', '\n']);
            accounts.add_user(&name, role, password, "命令行", now_ms())?;
            println!("已添加{}：{}", role.label(), name.trim());
        }
        UserAction::List => {
            let users = accounts.users()?;
            if users.is_empty() {
                println!("还没有控制台用户。用 fieldsync-server user add <用户名> --admin 添加第一个管理员。");
            }
            for (name, role, disabled) in users {
                println!("{name}\t{}{}", role.label(), if disabled { "\t（已停用）" } else { "" });
            }
        }
    }
    Ok(())
}

/// `reindex`: rebuilds the read model from the stored documents. The
/// server must be stopped (it holds the store).
fn reindex(data: &std::path::Path) -> Result<()> {
    let mut store = open_stopped(data, "重建读模型")?;
    store.set_cache_limit(DOC_CACHE);
    let (read, _) = read::ReadModel::open(data)?;
    let started = std::time::Instant::now();
    let count = read.rebuild(&mut store)?;
    println!("读模型已重建：{count} 份文档，用时 {:.1} 秒", started.elapsed().as_secs_f64());
    Ok(())
}

/// What `serve` opened before its runtime started.
struct Served {
    hq: register::Hq,
    replica: sync::HqReplica,
    read: Arc<read::ReadModel>,
    metrics: Arc<metrics::Metrics>,
    credential: sync_core::credential::SignedCredential,
    token_created: bool,
}

async fn run_server(data: &std::path::Path, args: ServeArgs, served: Served) -> Result<()> {
    let Served { hq, replica, read, metrics, credential, token_created } = served;
    let key = sync_core::identity::DeviceKey::from_seed(hq.seed());
    let quic = args.quic.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 4433)));
    let endpoint = field_client::net::server_endpoint(&key, quic)?;
    let http = args.http.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080)));
    let bind = |addr| {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| anyhow::anyhow!(field_client::net::cannot_listen(addr, &e)))?;
        listener.set_nonblocking(true)?;
        anyhow::Ok(listener)
    };
    let listener = bind(http)?;
    let metrics_listener = match args.metrics_listen {
        Some(addr) if !addr.ip().is_loopback() => {
            anyhow::bail!("指标端口只能监听本机回环地址（如 127.0.0.1:9464），不能是 {addr}：其上的 /metrics 不需令牌")
        }
        Some(addr) => Some(bind(addr)?),
        None => None,
    };
    let stop = stop_requested();
    println!("FieldSync 总部服务器已启动");
    println!("总部公钥：{}", hq.public_key());
    println!("同步地址：{}", endpoint.local_addr()?);
    println!("健康检查：http://{}/health", listener.local_addr()?);
    println!("管理接口：http://{}/api/v1（接口说明：/api/openapi.json）", listener.local_addr()?);
    if let Some(metrics) = &metrics_listener {
        println!("指标：http://{}/metrics（仅本机，不需令牌）", metrics.local_addr()?);
    }
    println!("{}", http::api::token_notice(data, token_created));
    println!("数据目录：{}", data.display());
    let hq_key = hq.public_key();
    let register = Arc::new(Mutex::new(hq));
    let replica = replica.with_register(register.clone());
    let log = register::SessionLog::start(data)?;
    let accounts = Arc::new(accounts::Accounts::open(data)?);
    let api =
        http::api::ApiState::new(register.clone(), read, replica.clone(), data.join("sync"), metrics.clone(), accounts);
    http::serve_apart(listener, metrics_listener, api)?;
    let quic = endpoint.clone();
    tokio::select! {
        () = sync::serve(endpoint, replica, register, credential, hq_key, metrics, log) => {}
        () = stop => {
            // What was acknowledged is durable already; what was not, a
            // device sends again. Devices are told why at once instead of
            // waiting out the idle timeout.
            println!("正在关闭：通知已连接的设备…");
            quic.close(1u32.into(), "总部服务器正在关闭，请稍后再同步".as_bytes());
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), quic.wait_idle()).await;
            println!("已关闭");
        }
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM (a service manager stopping the server), heard from
/// the moment this is called, not from when the future is first polled: a
/// signal sent as soon as the server says it is up is never missed (and
/// never kills it uncleanly).
fn stop_requested() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let mut signals = {
        use tokio::signal::unix::{SignalKind, signal};
        [signal(SignalKind::terminate()).ok(), signal(SignalKind::interrupt()).ok()]
    };
    async move {
        #[cfg(unix)]
        {
            let [terminate, interrupt] = &mut signals;
            tokio::select! {
                () = heard(terminate.as_mut()) => {}
                () = heard(interrupt.as_mut()) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The next signal `signal` brings; never, where it could not be listened to.
#[cfg(unix)]
async fn heard(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

fn main() -> std::process::ExitCode {
    let cli: Cli = field_client::cli::parse();
    let logs = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env());
    match cli.log_format.as_str() {
        "json" => logs.json().init(),
        _ => logs.init(),
    }
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("错误：{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The commands other than `serve` are one-shot file operations: no async
/// runtime.
fn run(cli: Cli) -> Result<()> {
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Key => println!("{}", register::Hq::open(&cli.data)?.public_key()),
        Command::Issue(args) => issue(&cli.data, args)?,
        Command::Revoke { serial, device } => {
            let form = register::RevokeForm { serials: serial, devices: device };
            let list = register::Hq::open(&cli.data)?.revoke(form, now_ms())?;
            println!(
                "已签发吊销名单第 {} 版：凭证 {} 个，设备 {} 台；各设备和安监站下次同步时生效。",
                list.version,
                list.serials.len(),
                list.devices.len()
            );
        }
        Command::AdminToken { print } => {
            let token = register::Hq::open(&cli.data)?.rotate_admin_token(&cli.data, now_ms())?;
            eprintln!("已生成新的管理令牌并写入 {}，旧令牌立即失效。", register::admin_token_path(&cli.data).display());
            if print {
                println!("{token}");
            }
        }
        Command::Quarantine { action } => match action.unwrap_or(QuarantineAction::List) {
            QuarantineAction::List => list_quarantine(&cli.data)?,
            QuarantineAction::Accept(args) => decide(&cli.data, sync::Verdict::Accept, args)?,
            QuarantineAction::Reject(args) => decide(&cli.data, sync::Verdict::Reject, args)?,
        },
        Command::Reindex => reindex(&cli.data)?,
        Command::Export(args) => export_register(&cli.data, args)?,
        Command::Briefing { campaign, out } => make_briefing(&cli.data, &campaign, out)?,
        Command::VerifyBriefing { file, hq_key } => verify_briefing(&cli.data, &file, hq_key.as_deref())?,
        Command::User { action } => user(&cli.data, action)?,
        Command::Serve(args) => serve(&cli.data, args)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_argument_is_explained_in_chinese() {
        use clap::CommandFactory;
        assert_eq!(field_client::cli::untranslated(Cli::command()), Vec::<String>::new());
    }
}
