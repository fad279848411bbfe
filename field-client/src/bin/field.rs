//! `field`: the inspector's offline command-line client.
//!
//! Every command opens the store in `FIELD_HOME`, does one thing durably,
//! and prints a Chinese summary (or JSON with `--json`).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use field_client::net::NetError;
use field_client::{
    PhotoProgress, PhotoReport, RelayEvent, Standing, Store, StoreError, export, new_entity_id, now_ms,
};
use serde_json::json;
use sync_core::codes;
use sync_core::doc::dossier::HazardInput;
use sync_core::doc::{campaign, conflicts, dossier, rfc3339};
use sync_core::identity::DevicePublicKey;
use sync_core::ids::{CreditCode, DocId, DocKind};
use sync_core::model::{
    AccidentReview, CampaignKind, Crs, DocumentCheck, DocumentResult, Domain, Enterprise, GeoPoint, Hazard, HazardKind,
    HazardLevel, RectificationMode, RectificationStatus, ReviewItemKind, ReviewItems, ScheduleEntry, SiteVisit, Step,
    StepKind, TeamMember, Verdict, VerifyResult,
};
use sync_core::rectification::Loop;
use sync_core::sync::session::Summary;
use sync_core::zone::Zone;

/// As the server (see its `main.rs`): per-thread heaps, less time in the
/// allocator during a sync.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// 工伤风险检查 现场离线客户端
#[derive(Parser)]
#[command(name = "field", version)]
struct Cli {
    /// 数据目录（默认 ~/.fieldsync）
    #[arg(long, env = "FIELD_HOME", global = true)]
    home: Option<PathBuf>,
    /// 以 JSON 输出，供脚本使用
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// 初始化本设备：生成设备密钥和本地数据库
    Init {
        /// 设备使用人姓名
        #[arg(long)]
        name: String,
    },
    /// 显示本设备的公钥和使用人
    Whoami,
    /// 导入总部签发的入网码（字符串或 @文件）
    Enroll {
        /// FS1: 开头的入网码，或 @文件路径
        enrollment: String,
    },
    /// 与总部同步（需先入网）；或经安监站中转、与另一台设备同步
    Sync {
        /// 总部同步地址（默认用入网码中的地址）
        #[arg(long, conflicts_with = "peer")]
        server: Option<std::net::SocketAddr>,
        /// 安监站中转或另一台设备的地址（以总部签发的凭证核验对方）
        #[arg(long)]
        peer: Option<std::net::SocketAddr>,
    },
    /// 安监站中转模式：接收检查员设备同步，能连上总部时转发
    Relay {
        /// 监听地址
        #[arg(long, default_value = "0.0.0.0:4434")]
        listen: std::net::SocketAddr,
        /// 尝试转发到总部的间隔（秒）
        #[arg(long, default_value_t = 60)]
        forward_every: u64,
    },
    /// 管理受信任的设备（导入数据包前需要信任对方）
    #[command(subcommand)]
    Trust(TrustCmd),
    /// 检查活动
    #[command(subcommand)]
    Campaign(CampaignCmd),
    /// 推荐隐患清单（只读）
    #[command(subcommand)]
    Checklist(ChecklistCmd),
    /// 事故隐患
    #[command(subcommand)]
    Hazard(HazardCmd),
    /// 隐患整改与复查
    #[command(subcommand)]
    Rectify(RectifyCmd),
    /// 四不放过核查
    #[command(subcommand)]
    Review(ReviewCmd),
    /// 证照资料检查
    Doccheck(DoccheckArgs),
    /// 记录现场检查
    Visit(VisitArgs),
    /// 待审核冲突
    #[command(subcommand)]
    Conflicts(ConflictsCmd),
    /// 本设备数据概况
    Status,
    /// 导出检查活动（JSON 全量 / CSV 隐患台账）
    #[command(subcommand)]
    Export(ExportCmd),
    /// 离线数据包（U 盘交换）
    #[command(subcommand)]
    Bundle(BundleCmd),
}

impl Command {
    /// Whether the command only reads the store, so that it can run while
    /// another process (a station relay) holds it.
    fn reads_only(&self) -> bool {
        matches!(
            self,
            Command::Whoami
                | Command::Status
                | Command::Export(_)
                | Command::Bundle(BundleCmd::Export { .. })
                | Command::Trust(TrustCmd::List)
                | Command::Campaign(CampaignCmd::List | CampaignCmd::Show { .. })
                | Command::Hazard(HazardCmd::List { .. } | HazardCmd::Show { .. })
                | Command::Conflicts(ConflictsCmd::List)
        )
    }
}

#[derive(Subcommand)]
enum TrustCmd {
    /// 信任一台设备的公钥
    Add {
        /// 对方 field whoami 显示的公钥
        key: String,
        /// 对方姓名
        #[arg(long)]
        name: String,
    },
    /// 列出受信任的设备
    List,
}

#[derive(Subcommand)]
enum CampaignCmd {
    /// 创建检查活动
    Create {
        /// 活动名称
        #[arg(long)]
        name: String,
        /// construction（建筑施工联合检查）/ mine（矿山企业调研）/ self（企业自查）
        #[arg(long, value_parser = parse_campaign_kind)]
        kind: CampaignKind,
        /// 开始日期 YYYY-MM-DD
        #[arg(long)]
        start: String,
        /// 结束日期 YYYY-MM-DD
        #[arg(long)]
        end: String,
        /// 时区（时区数据库名称）：台账和屏幕上的日期按此时区显示，默认 Asia/Shanghai
        #[arg(long, value_name = "时区", default_value = sync_core::zone::DEFAULT)]
        time_zone: String,
    },
    /// 列出检查活动
    List,
    /// 查看检查活动
    Show {
        /// 检查活动编号（cmp- 开头）
        campaign: String,
    },
    /// 添加被检查企业
    AddEnterprise {
        /// 检查活动编号（cmp- 开头）
        campaign: String,
        /// 企业名称
        #[arg(long)]
        name: String,
        /// 统一社会信用代码（18 位）
        #[arg(long)]
        code: String,
        /// construction / coal_mine / metal_nonmetal_mine / other
        #[arg(long, value_parser = parse_domain, default_value = "construction")]
        domain: Domain,
        /// 工程项目名称
        #[arg(long, default_value = "")]
        project: String,
        /// 企业地址
        #[arg(long, default_value = "")]
        address: String,
    },
    /// 添加检查组成员
    AddMember {
        /// 检查活动编号（cmp- 开头）
        campaign: String,
        /// 成员姓名
        #[arg(long)]
        name: String,
        /// 组长 / 检查员 / 安监站 / 专家
        #[arg(long, default_value = "检查员")]
        role: String,
        /// 所在单位
        #[arg(long, default_value = "")]
        org: String,
    },
    /// 添加日程
    Schedule {
        /// 检查活动编号（cmp- 开头）
        campaign: String,
        /// 检查日期 YYYY-MM-DD
        #[arg(long)]
        date: String,
        /// 企业统一社会信用代码
        #[arg(long)]
        enterprise: String,
        /// 备注
        #[arg(long, default_value = "")]
        note: String,
    },
    /// 登记本活动使用的清单
    UseChecklist {
        /// 检查活动编号（cmp- 开头）
        campaign: String,
        /// 清单编号（field checklist list 可查）
        checklist: String,
    },
}

#[derive(Subcommand)]
enum ChecklistCmd {
    /// 列出清单
    List,
    /// 查看清单条目
    Show {
        /// 清单编号（field checklist list 可查）
        checklist: String,
        /// 只看某一节，如 脚手架
        #[arg(long)]
        section: Option<String>,
    },
    /// 列出重大事故隐患判定条款（--criterion 用的编号），可按行业和关键词查找
    Criteria {
        /// 关键词：在条款编号、文件和条文中查找，如 脚手架、瓦斯
        #[arg(value_name = "关键词")]
        search: Option<String>,
        /// 行业：construction（建筑施工）/ coal_mine（煤矿）/ metal_nonmetal_mine（金属非金属矿山），或中文
        #[arg(long, value_name = "行业", value_parser = parse_domain)]
        industry: Option<Domain>,
    },
}

#[derive(Args)]
struct HazardFields {
    /// 隐患标题
    #[arg(long)]
    title: Option<String>,
    /// 隐患描述（@文件路径：从文件读取；-：从标准输入读取）
    #[arg(long)]
    description: Option<String>,
    /// unsafe_condition / unsafe_act / management_deficiency（或中文）
    #[arg(long, value_parser = parse_hazard_kind)]
    kind: Option<HazardKind>,
    /// GB 6441-1986 事故类型代码 01–20
    #[arg(long)]
    accident_type: Option<String>,
    /// general（一般）/ major（重大）
    #[arg(long, value_parser = parse_level)]
    level: Option<HazardLevel>,
    /// 重大事故隐患判定条款编号（field checklist criteria 可查）
    #[arg(long)]
    criterion: Option<String>,
    /// 隐患部位
    #[arg(long)]
    location: Option<String>,
    /// 分包单位（隐患所在作业的分包单位）
    #[arg(long)]
    subcontractor: Option<String>,
    /// GPS 坐标：纬度,经度
    #[arg(long)]
    gps: Option<String>,
    /// 坐标系 wgs84 / gcj02
    #[arg(long, value_parser = parse_crs, default_value = "wgs84")]
    crs: Crs,
    /// 依据条款
    #[arg(long)]
    basis: Option<String>,
}

#[derive(Subcommand)]
enum HazardCmd {
    /// 记录隐患
    Add {
        /// 检查活动编号（cmp- 开头）
        campaign: String,
        /// 企业统一社会信用代码或名称
        enterprise: String,
        #[command(flatten)]
        fields: HazardFields,
        /// 从清单条目带入（条目编号）
        #[arg(long)]
        from_checklist: Option<String>,
        /// 整改前照片文件（可多次）
        #[arg(long)]
        photo: Vec<PathBuf>,
        /// 发现人（默认本设备使用人）
        #[arg(long)]
        inspector: Option<String>,
    },
    /// 修改隐患
    Edit {
        /// 隐患编号（field hazard list 可查）
        hazard: String,
        #[command(flatten)]
        fields: HazardFields,
    },
    /// 添加照片
    Photo {
        /// 隐患编号（field hazard list 可查）
        hazard: String,
        /// 照片文件（可多个）；整改后照片随 field rectify submit --photo 记录
        files: Vec<PathBuf>,
    },
    /// 删除隐患（保留记录，标记为已删除）
    Delete {
        /// 隐患编号（field hazard list 可查）
        hazard: String,
    },
    /// 列出隐患
    List {
        /// 只看某一检查活动（cmp- 开头）
        #[arg(long)]
        campaign: Option<String>,
        /// 只看某一企业（统一社会信用代码或名称）
        #[arg(long)]
        enterprise: Option<String>,
        /// 只看某一级别：general（一般）/ major（重大）
        #[arg(long, value_parser = parse_level)]
        level: Option<HazardLevel>,
        /// 只看某一整改状态：open（未整改）/ rectifying（整改中）/ awaiting_verification（待复查）/ closed（已销号）
        #[arg(long, value_parser = parse_status)]
        status: Option<RectificationStatus>,
        /// 包括已删除的
        #[arg(long)]
        all: bool,
    },
    /// 查看隐患
    Show {
        /// 隐患编号（field hazard list 可查）
        hazard: String,
    },
}

#[derive(Subcommand)]
enum RectifyCmd {
    /// 下达整改要求
    Plan {
        /// 隐患编号（field hazard list 可查）
        hazard: String,
        /// immediate（立即整改）/ deadline（限期整改）
        #[arg(long, value_parser = parse_mode)]
        mode: RectificationMode,
        /// 整改期限 YYYY-MM-DD
        #[arg(long)]
        deadline: Option<String>,
        /// 整改责任人
        #[arg(long)]
        owner: String,
        /// 整改责任单位（如 某劳务分包公司）
        #[arg(long, default_value = "")]
        unit: String,
        /// 整改措施
        #[arg(long)]
        measures: String,
        /// 临时管控措施
        #[arg(long, default_value = "")]
        interim: String,
    },
    /// 开始整改
    Start {
        /// 隐患编号（field hazard list 可查）
        hazard: String,
    },
    /// 整改完成，提交复查
    Submit {
        /// 隐患编号（field hazard list 可查）
        hazard: String,
        /// 整改人
        #[arg(long)]
        by: String,
        /// 整改后照片
        #[arg(long)]
        photo: Vec<PathBuf>,
    },
    /// 复查：通过则销号，不通过退回整改；复查人即本设备的持有人（不能是整改人）
    Verify {
        /// 隐患编号（field hazard list 可查）
        hazard: String,
        /// pass（通过）/ fail（不通过）
        #[arg(long)]
        result: String,
        /// 复查意见
        #[arg(long, default_value = "")]
        note: String,
        /// 复查照片
        #[arg(long)]
        photo: Vec<PathBuf>,
    },
    /// 重新打开已销号的隐患，退回整改
    Reopen {
        /// 隐患编号（field hazard list 可查）
        hazard: String,
        /// 重新打开的原因
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
enum ReviewCmd {
    /// 登记一起既往事故的四不放过核查
    Add {
        /// 检查活动编号（cmp- 开头）
        campaign: String,
        /// 企业统一社会信用代码或名称
        enterprise: String,
        /// 事故日期 YYYY-MM-DD
        #[arg(long)]
        date: String,
        /// 事故概况
        #[arg(long)]
        summary: String,
        /// 事故调查报告 / 批复文号
        #[arg(long, default_value = "")]
        report: String,
    },
    /// 填写一项结论
    Set {
        /// 核查编号（field review list 可查）
        review: String,
        /// cause_identified / responsible_handled / measures_implemented / personnel_educated
        #[arg(value_parser = parse_review_item)]
        item: ReviewItemKind,
        /// pass（符合）/ fail（不符合）/ not_applicable（不适用）
        #[arg(value_parser = parse_verdict)]
        verdict: Verdict,
        /// 查阅的证据
        #[arg(long)]
        evidence: Option<String>,
        /// 备注
        #[arg(long)]
        note: Option<String>,
    },
    /// 列出四不放过核查
    List {
        /// 检查活动编号（cmp- 开头）
        campaign: String,
        /// 企业统一社会信用代码或名称
        enterprise: String,
    },
}

#[derive(Args)]
struct DoccheckArgs {
    /// 检查活动编号（cmp- 开头）
    campaign: String,
    /// 企业统一社会信用代码或名称
    enterprise: String,
    /// 资料类型，如 安全生产许可证
    #[arg(long = "type")]
    document_type: String,
    /// 名称或编号
    #[arg(long, default_value = "")]
    name: String,
    /// compliant / non_compliant / missing / expired（或中文）
    #[arg(long, value_parser = parse_doc_result)]
    result: DocumentResult,
    /// 有效期至 YYYY-MM-DD
    #[arg(long)]
    expires: Option<String>,
    /// 备注
    #[arg(long, default_value = "")]
    note: String,
}

#[derive(Args)]
struct VisitArgs {
    /// 检查活动编号（cmp- 开头）
    campaign: String,
    /// 企业统一社会信用代码或名称
    enterprise: String,
    /// 检查日期 YYYY-MM-DD
    #[arg(long)]
    date: String,
    /// 参加检查人员
    #[arg(long, default_value = "")]
    inspectors: String,
    /// 备注
    #[arg(long, default_value = "")]
    note: String,
}

#[derive(Subcommand)]
enum ConflictsCmd {
    /// 列出需要审核的冲突
    List,
    /// 裁定冲突：写入选定的值
    Resolve {
        /// 企业档案编号（dos-…）
        dossier: String,
        /// 冲突路径（list 中显示），或 隐患编号（前缀）/字段中文名，如 01M98/隐患等级
        path: String,
        /// 选定的值
        value: String,
    },
}

#[derive(Subcommand)]
enum ExportCmd {
    /// 导出 JSON（检查活动、企业档案、通报材料）
    Json {
        /// 检查活动编号（cmp- 开头）
        campaign: String,
        /// 写入的文件（默认输出到屏幕）
        #[arg(long)]
        out: Option<PathBuf>,
        /// 文件已存在时覆盖它
        #[arg(long)]
        force: bool,
    },
    /// 导出隐患排查治理台账 CSV
    Csv {
        /// 检查活动编号（cmp- 开头）
        campaign: String,
        /// 写入的文件（默认输出到屏幕）
        #[arg(long)]
        out: Option<PathBuf>,
        /// 同时把台账列出的照片写到台账旁的“照片”目录（需 --out）
        #[arg(long, requires = "out")]
        photos: bool,
        /// 文件已存在时覆盖它
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum BundleCmd {
    /// 导出本设备全部数据为签名数据包
    Export {
        /// 数据包文件路径
        #[arg(long)]
        out: PathBuf,
        /// 文件已存在时覆盖它
        #[arg(long)]
        force: bool,
    },
    /// 校验并导入数据包
    Import {
        /// 数据包文件路径
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli: Cli = field_client::cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("错误：{}", in_words(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes, each in Chinese: a file system or database
/// failure as `field_client::words` tells it (once, where an outer message
/// already told it).
fn in_words(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let told = if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            field_client::words::io(io)
        } else if let Some(db) = cause.downcast_ref::<rusqlite::Error>() {
            field_client::words::db(db)
        } else {
            cause.to_string()
        };
        if !text.contains(&told) {
            if !text.is_empty() {
                text.push('：');
            }
            text.push_str(&told);
        }
    }
    text
}

/// Writes `bytes` to standard output. A reader that has gone (`field …
/// | head`) ends the program quietly: nothing is lost, since every change
/// is durable before anything is printed.
fn say(bytes: &[u8]) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("错误：无法输出：{}", field_client::words::io(&e));
        std::process::exit(1);
    }
}

fn home(cli_home: Option<PathBuf>) -> Result<PathBuf> {
    match cli_home {
        Some(h) => Ok(h),
        None => {
            let base = std::env::var_os("HOME").context("未设置 HOME，请用 --home 指定数据目录")?;
            Ok(Path::new(&base).join(".fieldsync"))
        }
    }
}

/// Prints either the JSON value or the human text.
struct Out {
    json: bool,
}

impl Out {
    fn emit(&self, value: serde_json::Value, text: impl FnOnce() -> String) {
        let line = if self.json { value.to_string() } else { text() };
        say(format!("{line}\n").as_bytes());
    }
}

/// A document a session could not send (`Summary::withheld`), why, and
/// what to do about it.
fn withheld_line(doc: &str, reason: &str, verb: &str) -> String {
    format!("文档 {doc} 暂未{verb}：{reason}。请让该检查员自行同步，或重新导入其附带凭证的数据包")
}

/// A document whose changes the peer kept aside for review
/// (`Summary::quarantined`), why, and what to do about it.
fn quarantined_line(doc: &str, reason: &str) -> String {
    format!("文档 {doc} 的修改被对方隔离待审核（未写入）：{reason}。请联系总部核对这份文档")
}

/// Work in a document that HQ has already rejected (`Summary::rejected`):
/// decided, nobody need act.
fn rejected_line(doc: &str, reason: &str) -> String {
    format!("文档 {doc} 中有修改已被总部拒收（不会写入，其他修改照常同步）：{reason}")
}

/// The documents a session held back, keyed by id for output.
type ById<'a> = BTreeMap<String, &'a String>;

/// What a session held back: withheld here, kept aside by the peer, and
/// rejected by HQ already.
#[derive(Debug, Default)]
struct SessionHeld<'a> {
    withheld: ById<'a>,
    quarantined: ById<'a>,
    rejected: ById<'a>,
}

impl SessionHeld<'_> {
    fn is_empty(&self) -> bool {
        self.withheld.is_empty() && self.quarantined.is_empty() && self.rejected.is_empty()
    }

    /// One line per document, for people.
    fn lines(&self, verb: &str) -> Vec<String> {
        let withheld = self.withheld.iter().map(|(doc, reason)| withheld_line(doc, reason, verb));
        let quarantined = self.quarantined.iter().map(|(doc, reason)| quarantined_line(doc, reason));
        let rejected = self.rejected.iter().map(|(doc, reason)| rejected_line(doc, reason));
        withheld.chain(quarantined).chain(rejected).collect()
    }
}

fn held_back(summary: &sync_core::sync::session::Summary) -> SessionHeld<'_> {
    fn by_id(docs: &BTreeMap<DocId, String>) -> ById<'_> {
        docs.iter().map(|(doc, reason)| (doc.to_string(), reason)).collect()
    }
    SessionHeld {
        withheld: by_id(&summary.withheld),
        quarantined: by_id(&summary.quarantined),
        rejected: by_id(&summary.rejected),
    }
}

/// What the relay's console has told the clerk already, so that a state
/// that lasts is said once: HQ out of reach, and which documents are held
/// back and why.
#[derive(Default)]
struct Told {
    hq_down: std::cell::Cell<bool>,
    held_back: std::cell::RefCell<String>,
}

impl Told {
    /// The documents a forward held back, unless the clerk was told
    /// exactly these at the forward before (then none).
    fn held_back_news<'a>(&self, summary: &'a Summary) -> SessionHeld<'a> {
        let held = held_back(summary);
        let now = format!("{held:?}");
        if self.held_back.replace(now.clone()) == now { SessionHeld::default() } else { held }
    }
}

/// Prints what a station relay did, for the clerk at its console: each
/// device's sync, each forward that moved anything, HQ going out of reach
/// (once, until it is back), and documents held back (when that changes).
fn relay_event(out: &Out, event: RelayEvent, every: u64, told: &Told) {
    let hq_down = &told.hq_down;
    let time = jiff::Zoned::now().strftime("%H:%M:%S").to_string();
    let moved = |summary: &Summary| (summary.delivered(), summary.stored(), summary.receipts);
    let photo_counts =
        |photos: &Result<PhotoReport, NetError>| photos.as_ref().map_or((0, 0), |p| (p.sent, p.received));
    let photo_errors = |photos: &Result<PhotoReport, NetError>| match photos {
        Ok(report) => report.failed.clone(),
        Err(error) => vec![format!("照片传输中断：{error}（文档已同步，下次同步时续传）")],
    };
    match event {
        RelayEvent::Served { device, result } => {
            let who = device.unwrap_or_else(|| "一台设备".to_owned());
            match result {
                Ok((summary, photos)) => {
                    let (sent, received, _) = moved(&summary);
                    let (photos_sent, photos_received) = photo_counts(&photos);
                    let errors = photo_errors(&photos);
                    out.emit(
                        json!({ "time": time, "event": "served", "device": who, "received": received, "sent": sent,
                                "photos_received": photos_received, "photos_sent": photos_sent,
                                "photo_errors": errors }),
                        || {
                            let mut text = format!(
                                "[{time}] {who} 同步完成：收到修改 {received} 次，发出修改 {sent} 次；收到照片 {photos_received} 张，发出照片 {photos_sent} 张"
                            );
                            for error in &errors {
                                text.push_str(&format!("\n[{time}] {who}：{error}"));
                            }
                            text
                        },
                    );
                }
                Err(error) => out.emit(
                    json!({ "time": time, "event": "served", "device": who, "error": error.to_string() }),
                    || format!("[{time}] {who} 同步失败：{error}"),
                ),
            }
        }
        RelayEvent::Forwarded { summary, photos } => {
            let (sent, received, receipts) = moved(&summary);
            let (photos_sent, photos_received) = photo_counts(&photos);
            let errors = photo_errors(&photos);
            let was_down = hq_down.replace(false);
            let quiet = sent + received + receipts + photos_sent + photos_received == 0;
            let held = told.held_back_news(&summary);
            if quiet && held.is_empty() && errors.is_empty() && !was_down {
                return;
            }
            out.emit(
                json!({ "time": time, "event": "forwarded", "sent": sent, "received": received, "receipts": receipts,
                        "photos_sent": photos_sent, "photos_received": photos_received, "photo_errors": errors,
                        "withheld": held.withheld, "quarantined": held.quarantined, "rejected": held.rejected }),
                || {
                    let mut text = if quiet {
                        format!("[{time}] 已恢复与总部的连接，没有需要转发的数据")
                    } else {
                        format!(
                            "[{time}] 已与总部同步：转发修改 {sent} 次，收到修改 {received} 次，总部回执 {receipts} 份；转发照片 {photos_sent} 张，收到照片 {photos_received} 张"
                        )
                    };
                    for line in held.lines("转发") {
                        text.push_str(&format!("\n[{time}] {line}"));
                    }
                    for error in &errors {
                        text.push_str(&format!("\n[{time}] {error}"));
                    }
                    text
                },
            );
        }
        RelayEvent::ForwardFailed(error) => {
            if hq_down.replace(true) {
                return;
            }
            out.emit(json!({ "time": time, "event": "forward_failed", "error": error.to_string() }), || {
                format!("[{time}] 暂时无法与总部同步：{error}。收到的数据保存在本站，每 {every} 秒重试")
            });
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let home = home(cli.home)?;
    let out = Out { json: cli.json };
    if let Command::Init { name } = &cli.command {
        let store = Store::init(&home, name)?;
        let key = store.public_key().to_string();
        out.emit(json!({ "public_key": key, "home": home }), || {
            format!("已初始化本设备（{}）。\n设备公钥：{key}\n数据目录：{}", store.device_name(), home.display())
        });
        return Ok(());
    }
    // The checklists and criteria are read-only and built in: no store needed.
    let command = match cli.command {
        Command::Checklist(cmd) => return checklist_cmd(&out, cmd),
        command => command,
    };
    let mut store = match Store::open(&home) {
        // A station's relay holds the store all day: the clerk can still look.
        Err(StoreError::Locked(_)) if command.reads_only() => {
            // On standard error: what goes to standard output may be a file.
            let _ = writeln!(
                std::io::stderr(),
                "另一个 field 程序（如安监站中转）正在使用本机数据，以下为只读查看，显示此刻已保存的内容"
            );
            Store::open_read_only(&home)?
        }
        opened => opened?,
    };
    match command {
        Command::Init { .. } => bail!("{} 中已有设备数据，不能重复初始化", home.display()),
        Command::Whoami => {
            let key = store.public_key().to_string();
            out.emit(json!({ "public_key": key, "name": store.device_name() }), || {
                format!("使用人：{}\n设备公钥：{key}", store.device_name())
            });
        }
        Command::Enroll { enrollment } => {
            let text = match enrollment.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path).with_context(|| format!("无法读取 {path}"))?,
                None => enrollment,
            };
            let enrollment: sync_core::credential::Enrollment = text.parse()?;
            let c = store.enroll(&enrollment)?;
            out.emit(
                json!({ "serial": c.serial, "role": c.role, "name": c.name, "server": enrollment.server,
                        "hq_key": enrollment.hq.to_string(), "not_after": rfc3339(c.not_after) }),
                || {
                    let scope = match &c.scope.campaigns {
                        None => "全部检查活动".to_owned(),
                        Some(list) => format!("{} 个检查活动", list.len()),
                    };
                    format!(
                        "入网成功：{}（{}），凭证编号 {}，范围：{scope}，有效期至 {}\n总部地址：{}\n总部公钥：{}",
                        c.name,
                        c.role.label(),
                        c.serial,
                        rfc3339(c.not_after),
                        enrollment.server,
                        enrollment.hq
                    )
                },
            );
        }
        Command::Relay { listen, forward_every } => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let every = std::time::Duration::from_secs(forward_every.max(1));
            let ready = |addr| {
                say(format!("安监站中转已启动：{addr}（每 {} 秒尝试转发到总部，Ctrl-C 停止）\n", every.as_secs())
                    .as_bytes())
            };
            let told = Told::default();
            let report = |event| relay_event(&out, event, every.as_secs(), &told);
            let stop = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            runtime.block_on(store.relay(listen, every, ready, report, stop))?;
            let time = jiff::Zoned::now().strftime("%H:%M:%S").to_string();
            out.emit(json!({ "time": time, "event": "stopped" }), || format!("[{time}] 安监站中转已停止"));
        }
        Command::Sync { server, peer } => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let peer_name = match (peer, server) {
                (Some(addr), _) => format!("安监站或设备 {addr}"),
                (None, Some(addr)) => format!("总部 {addr}"),
                (None, None) => store.enrollment()?.map_or_else(|| "总部".to_owned(), |e| format!("总部 {}", e.server)),
            };
            let bar = sync_bar(&out, &peer_name);
            let progress = |p: PhotoProgress| match p {
                PhotoProgress::Planned { photos, bytes } if photos > 0 => {
                    photo_style(&bar);
                    bar.set_length(bytes);
                    bar.set_message(format!("照片 {photos} 张"));
                }
                PhotoProgress::Moved(n) => bar.inc(n),
                _ => {}
            };
            let report = match peer {
                Some(addr) => runtime.block_on(store.sync_reporting(Some(addr), false, &progress)),
                None => runtime.block_on(store.sync_reporting(server, true, &progress)),
            };
            bar.finish_and_clear();
            let report = report?;
            let summary = report.summary;
            let (sent, received) = (summary.delivered(), summary.stored());
            let photos = report.photos.as_ref().ok();
            let mut photo_errors: Vec<String> = photos.map(|p| p.failed.clone()).unwrap_or_default();
            if let Err(error) = &report.photos {
                photo_errors.push(format!("照片同步中断：{error}（文档已同步，下次同步时续传）"));
            }
            let (photos_sent, photos_received) = photos.map_or((0, 0), |p| (p.sent, p.received));
            let held = held_back(&summary);
            let to_hq = peer.is_none();
            let standing = store.standing()?;
            let (pending, owed, safe) = (standing.unreceipted, standing.owed, standing.safe_to_leave());
            out.emit(
                json!({ "sent": sent, "received": received, "receipts": summary.receipts,
                        "photos_sent": photos_sent, "photos_received": photos_received, "photo_errors": photo_errors,
                        "withheld": held.withheld, "quarantined": held.quarantined, "rejected": held.rejected, "unreceipted_changes": pending, "photos_not_at_hq": owed.photos,
                        "photo_bytes_not_at_hq": owed.bytes, "safe_to_leave": safe }),
                || {
                    let mut text = format!(
                        "同步完成：发出修改 {sent} 次，收到修改 {received} 次，总部回执 {} 份；发出照片 {photos_sent} 张，收到照片 {photos_received} 张",
                        summary.receipts
                    );
                    for line in held.lines("发出") {
                        text.push_str(&format!("\n{line}"));
                    }
                    for error in &photo_errors {
                        text.push_str(&format!("\n{error}"));
                    }
                    text.push_str(&format!("\n{}", safety(true, pending, owed)));
                    text
                },
            );
            // Scripts learn from the exit status that work is left behind.
            if !held.withheld.is_empty() {
                bail!("有 {} 份文档未能发出，见上方说明", held.withheld.len());
            }
            if !held.quarantined.is_empty() {
                bail!("有 {} 份文档的修改被隔离待审核，见上方说明", held.quarantined.len());
            }
            if to_hq && !photo_errors.is_empty() {
                bail!("照片没有全部送达总部，请稍后再次执行 field sync");
            }
        }
        Command::Trust(cmd) => trust(&store, &out, cmd)?,
        Command::Campaign(cmd) => campaign_cmd(&mut store, &out, cmd)?,
        Command::Checklist(cmd) => checklist_cmd(&out, cmd)?,
        Command::Hazard(cmd) => hazard_cmd(&mut store, &out, cmd)?,
        Command::Rectify(cmd) => rectify_cmd(&mut store, &out, cmd)?,
        Command::Review(cmd) => review_cmd(&mut store, &out, cmd)?,
        Command::Doccheck(args) => {
            let dossier_id = open_dossier(&mut store, &args.campaign, &args.enterprise)?;
            let id = new_entity_id()?;
            let check = DocumentCheck {
                document_type: args.document_type,
                name: args.name,
                result: args.result,
                expires_on: args.expires,
                note: args.note,
            };
            store.edit(&dossier_id, |tx| dossier::add_document_check(tx, &id, &check))?;
            out.emit(json!({ "id": id }), || {
                format!("已记录资料检查 {id}：{}（{}）", check.document_type, check.result.label())
            });
        }
        Command::Visit(args) => {
            let dossier_id = open_dossier(&mut store, &args.campaign, &args.enterprise)?;
            let id = new_entity_id()?;
            let visit = SiteVisit { date: args.date, inspectors: args.inspectors, note: args.note };
            store.edit(&dossier_id, |tx| dossier::add_site_visit(tx, &id, &visit))?;
            out.emit(json!({ "id": id }), || format!("已记录现场检查 {id}（{}）", visit.date));
        }
        Command::Conflicts(cmd) => conflicts_cmd(&mut store, &out, cmd)?,
        Command::Status => status(&mut store, &out)?,
        Command::Export(cmd) => export_cmd(&mut store, &out, cmd)?,
        Command::Bundle(cmd) => bundle_cmd(&mut store, &out, cmd)?,
    }
    Ok(())
}

fn trust(store: &Store, out: &Out, cmd: TrustCmd) -> Result<()> {
    match cmd {
        TrustCmd::Add { key, name } => {
            let parsed: DevicePublicKey = key.parse()?;
            store.trust(&parsed, &name)?;
            out.emit(json!({ "trusted": parsed.to_string(), "name": name }), || {
                format!("已信任 {name} 的设备 {parsed}")
            });
        }
        TrustCmd::List => {
            let list = store.trusted()?;
            out.emit(json!(list.iter().map(|(k, n)| json!({"key": k, "name": n})).collect::<Vec<_>>()), || {
                if list.is_empty() {
                    "尚未信任任何其他设备。".into()
                } else {
                    list.iter().map(|(k, n)| format!("{n}\t{k}")).collect::<Vec<_>>().join("\n")
                }
            });
        }
    }
    Ok(())
}

fn campaign_id(store: &Store, text: &str) -> Result<DocId> {
    if let Ok(id) = text.parse::<DocId>()
        && id.kind() == DocKind::Campaign
    {
        return Ok(id);
    }
    let matches: Vec<DocId> = store
        .doc_ids(DocKind::Campaign)?
        .into_iter()
        .filter(|id| id.as_str().starts_with(text) && text.len() >= 8)
        .collect();
    match matches.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("未找到检查活动：{text}（field campaign list 可查看编号）"),
        _ => bail!("编号 {text} 对应多个检查活动，请输入更长的编号"),
    }
}

fn open_dossier(store: &mut Store, campaign: &str, enterprise: &str) -> Result<DocId> {
    let campaign = campaign_id(store, campaign)?;
    Ok(store.open_dossier(&campaign, enterprise.trim())?)
}

fn campaign_cmd(store: &mut Store, out: &Out, cmd: CampaignCmd) -> Result<()> {
    match cmd {
        CampaignCmd::Create { name, kind, start, end, time_zone } => {
            let Some(zone) = Zone::named(time_zone.trim()) else {
                bail!("时区无效：{time_zone}（应为时区数据库中的名称，如 Asia/Shanghai）");
            };
            let id = store.create_campaign(&name, kind, &start, &end)?;
            if zone.name() != sync_core::zone::DEFAULT {
                store.edit(&id, |tx| sync_core::doc::campaign::set_time_zone(tx, zone.name()))?;
            }
            let c = store.campaign(&id)?;
            let json = json!({ "id": id, "briefing_deadline": c.briefing_deadline, "time_zone": zone.name() });
            out.emit(json, || {
                format!(
                    "已创建检查活动 {id}\n{}（{}），{} 至 {}，通报培训会最迟 {} 召开；日期按 {} 时区显示",
                    c.name,
                    kind.label(),
                    c.start_date,
                    c.end_date,
                    c.briefing_deadline,
                    zone.name()
                )
            });
        }
        CampaignCmd::List => {
            let mut list = Vec::new();
            for id in store.doc_ids(DocKind::Campaign)? {
                list.push(store.campaign(&id)?);
            }
            out.emit(serde_json::to_value(&list)?, || {
                if list.is_empty() {
                    return "本设备还没有检查活动。".into();
                }
                list.iter()
                    .map(|c| {
                        format!(
                            "{}\t{}\t{} 至 {}\t企业 {} 家\t通报截止 {}",
                            c.id,
                            c.name,
                            c.start_date,
                            c.end_date,
                            c.enterprises.len(),
                            c.briefing_deadline
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        CampaignCmd::Show { campaign } => {
            let id = campaign_id(store, &campaign)?;
            let c = store.campaign(&id)?;
            out.emit(serde_json::to_value(&c)?, || {
                let mut s = format!(
                    "{}（{}）\n编号：{}\n日期：{} 至 {}\n通报培训会截止：{}\n",
                    c.name,
                    c.campaign_kind.label(),
                    c.id,
                    c.start_date,
                    c.end_date,
                    c.briefing_deadline
                );
                s.push_str(&format!("检查组（{} 人）：", c.team.len()));
                s.push_str(
                    &c.team.values().map(|m| format!("{}（{}）", m.name, m.role)).collect::<Vec<_>>().join("、"),
                );
                s.push_str(&format!("\n被检查企业（{} 家）：\n", c.enterprises.len()));
                for e in c.enterprises.values() {
                    s.push_str(&format!("  {}\t{}\t{}\n", e.unified_social_credit_code, e.name, e.project));
                }
                if !c.schedule.is_empty() {
                    s.push_str("日程：\n");
                    let mut entries: Vec<_> = c.schedule.values().collect();
                    entries.sort_by(|a, b| a.date.cmp(&b.date));
                    for e in entries {
                        let name = c.enterprises.get(&e.enterprise).map_or(e.enterprise.as_str(), |x| x.name.as_str());
                        s.push_str(&format!("  {}\t{}\t{}\n", e.date, name, e.note));
                    }
                }
                if !c.checklists.is_empty() {
                    s.push_str("使用清单：");
                    s.push_str(&c.checklists.iter().map(|(k, v)| format!("{k} v{v}")).collect::<Vec<_>>().join("、"));
                }
                s.trim_end().to_owned()
            });
        }
        CampaignCmd::AddEnterprise { campaign: c, name, code, domain, project, address } => {
            let id = campaign_id(store, &c)?;
            let code: CreditCode = code.parse()?;
            let enterprise = Enterprise {
                name: name.trim().to_owned(),
                unified_social_credit_code: code.clone(),
                domain,
                project,
                address,
                dossier_id: DocId::dossier(&id, &code),
            };
            store.edit(&id, |tx| campaign::add_enterprise(tx, &id, &enterprise))?;
            let dossier_id = store.open_dossier(&id, code.as_str())?;
            out.emit(json!({ "enterprise": code, "dossier": dossier_id }), || {
                format!("已添加企业 {}（{code}），企业档案 {dossier_id}", enterprise.name)
            });
        }
        CampaignCmd::AddMember { campaign: c, name, role, org } => {
            let id = campaign_id(store, &c)?;
            let member_id = new_entity_id()?;
            let member = TeamMember { name, role, organization: org };
            store.edit(&id, |tx| campaign::add_member(tx, &member_id, &member))?;
            out.emit(json!({ "id": member_id }), || format!("已添加检查组成员 {}（{}）", member.name, member.role));
        }
        CampaignCmd::Schedule { campaign: c, date, enterprise, note } => {
            let id = campaign_id(store, &c)?;
            let entry_id = new_entity_id()?;
            let code: CreditCode = enterprise.parse()?;
            let entry = ScheduleEntry { date, enterprise: code.to_string(), note };
            store.edit(&id, |tx| campaign::add_schedule(tx, &entry_id, &entry))?;
            out.emit(json!({ "id": entry_id }), || format!("已添加日程：{} {}", entry.date, entry.enterprise));
        }
        CampaignCmd::UseChecklist { campaign: c, checklist } => {
            let id = campaign_id(store, &c)?;
            let list = find_checklist(&checklist)?;
            store.edit(&id, |tx| campaign::use_checklist(tx, &list.id, list.version))?;
            out.emit(json!({ "checklist": list.id, "version": list.version }), || {
                format!("本活动使用清单：{}（{} v{}）", list.name, list.id, list.version)
            });
        }
    }
    Ok(())
}

fn find_checklist(id: &str) -> Result<sync_core::model::Checklist> {
    Store::checklists()?
        .into_iter()
        .find(|c| c.id == id)
        .with_context(|| format!("未找到清单：{id}（field checklist list 可查看）"))
}

fn checklist_item(item_id: &str) -> Result<sync_core::model::ChecklistItem> {
    for list in Store::checklists()? {
        if let Some(item) = list.items.get(item_id) {
            return Ok(item.clone());
        }
    }
    bail!("未找到清单条目：{item_id}（field checklist show 清单编号 可查看）")
}

fn checklist_cmd(out: &Out, cmd: ChecklistCmd) -> Result<()> {
    match cmd {
        ChecklistCmd::List => {
            let lists = Store::checklists()?;
            out.emit(
                json!(
                    lists
                        .iter()
                        .map(|c| json!({"id": c.id, "version": c.version, "name": c.name, "items": c.items.len()}))
                        .collect::<Vec<_>>()
                ),
                || {
                    lists
                        .iter()
                        .map(|c| {
                            format!(
                                "{}\tv{}\t{}\t{} 条（{}）",
                                c.id,
                                c.version,
                                c.name,
                                c.items.len(),
                                c.domain.label()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                },
            );
        }
        ChecklistCmd::Criteria { search, industry } => {
            let found: Vec<_> = sync_core::codes::criteria()
                .iter()
                .filter(|c| industry.is_none_or(|d| c.domain == d.as_str()))
                .filter(|c| {
                    search.as_deref().is_none_or(|s| {
                        [&c.id, &c.standard, &c.document_no, &c.clause, &c.text].iter().any(|f| f.contains(s))
                    })
                })
                .collect();
            if found.is_empty() {
                bail!("没有找到符合条件的判定条款；可去掉关键词或行业再查");
            }
            out.emit(json!(found), || {
                found
                    .iter()
                    .map(|c| {
                        let industry = Domain::parse(&c.domain).map_or(c.domain.as_str(), Domain::label);
                        format!(
                            "{}	[{industry}] {} {}
	{}",
                            c.id, c.document_no, c.clause, c.text
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        ChecklistCmd::Show { checklist, section } => {
            let list = find_checklist(&checklist)?;
            let items: Vec<_> =
                list.items.iter().filter(|(_, i)| section.as_ref().is_none_or(|s| &i.section == s)).collect();
            out.emit(json!(items.iter().map(|(id, i)| json!({"id": id, "item": i})).collect::<Vec<_>>()), || {
                items
                    .iter()
                    .map(|(id, i)| {
                        let major = i
                            .major_hazard_criterion
                            .as_deref()
                            .map(|c| format!("\t【可判定重大：{c}】"))
                            .unwrap_or_default();
                        format!(
                            "{id}\t[{}]\t{}\t{}（{}）{major}",
                            i.section,
                            i.title,
                            i.accident_type.name(),
                            i.legal_basis
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(())
}

fn parse_gps(text: &str, crs: Crs) -> Result<GeoPoint> {
    let (lat, lon) = text.split_once(',').context("GPS 格式应为 纬度,经度，如 39.0153,106.3845")?;
    let lat: f64 = lat.trim().parse().context("GPS 纬度不是数字")?;
    let lon: f64 = lon.trim().parse().context("GPS 经度不是数字")?;
    Ok(GeoPoint { lat, lon, crs })
}

fn attach(store: &Store, files: &[PathBuf]) -> Result<Vec<(String, String)>> {
    files
        .iter()
        .map(|path| {
            let sha = store.add_photo(path)?;
            let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            Ok((sha, file_name))
        })
        .collect()
}

impl HazardFields {
    /// What the inspector gave, with the GPS point read.
    fn input(self) -> Result<HazardInput> {
        let gps = self.gps.map(|v| parse_gps(&v, self.crs)).transpose()?;
        Ok(HazardInput {
            title: self.title,
            description: self.description.map(|d| long_text(&d)).transpose()?,
            kind: self.kind,
            accident_type: self.accident_type,
            level: self.level,
            criterion: self.criterion,
            location: self.location,
            subcontractor: self.subcontractor,
            gps,
            basis: self.basis,
        })
    }
}

/// A long text given on the command line as it is, or `@path` (read from
/// that file) or `-` (read from standard input). Far more than any field
/// holds is refused before it is read whole; the schema's own limit then
/// says how much a field takes.
fn long_text(given: &str) -> Result<String> {
    use std::io::Read;
    const MOST: u64 = 1 << 20;
    let (mut reader, source): (Box<dyn Read>, String) = match given {
        "-" => (Box::new(std::io::stdin()), "标准输入".to_owned()),
        _ => match given.strip_prefix('@') {
            Some(path) => {
                let file = std::fs::File::open(path)
                    .map_err(|e| anyhow::anyhow!("无法读取 {path}：{}", field_client::words::io(&e)))?;
                (Box::new(file), path.to_owned())
            }
            None => return Ok(given.to_owned()),
        },
    };
    let mut bytes = Vec::new();
    reader
        .by_ref()
        .take(MOST + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| anyhow::anyhow!("无法读取 {source}：{}", field_client::words::io(&e)))?;
    if bytes.len() as u64 > MOST {
        bail!("{source} 的内容超过 1 MB，远超描述的长度上限");
    }
    let text = String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{source} 不是 UTF-8 编码的文本"))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

fn hazard_cmd(store: &mut Store, out: &Out, cmd: HazardCmd) -> Result<()> {
    match cmd {
        HazardCmd::Add { campaign, enterprise, fields, from_checklist, photo, inspector } => {
            let dossier_id = open_dossier(store, &campaign, &enterprise)?;
            let template = from_checklist.map(|id| checklist_item(&id).map(|item| (id, item))).transpose()?;
            let inspector = inspector.unwrap_or_else(|| store.device_name().to_owned());
            let zone = Zone::of(&store.campaign(&campaign_id(store, &campaign)?)?);
            let mut hazard = dossier::new_hazard(fields.input()?, template, inspector, rfc3339(now_ms()), &zone)?;
            hazard.photos = attach(store, &photo)?.into_iter().collect();
            let id = new_entity_id()?;
            store.edit(&dossier_id, |tx| dossier::add_hazard(tx, &id, &hazard))?;
            out.emit(json!({ "id": id, "dossier": dossier_id }), || {
                format!(
                    "已记录隐患 {id}：{}（{}，{}），照片 {} 张",
                    hazard.title,
                    hazard.level.label(),
                    hazard.accident_type.name(),
                    hazard.photos.len()
                )
            });
        }
        HazardCmd::Edit { hazard, fields } => {
            let r = store.find_hazard(&hazard)?;
            let input = fields.input()?;
            let confirmed = input.clone();
            store.edit(&r.dossier, |tx| {
                dossier::modify_hazard(tx, &r.record, |h| input.apply(h))?;
                confirmed.confirm(tx, &r.record)
            })?;
            out.emit(json!({ "id": r.record }), || format!("已修改隐患 {}", r.record));
        }
        HazardCmd::Photo { hazard, files } => {
            let r = store.find_hazard(&hazard)?;
            let photos = attach(store, &files)?;
            let count = photos.len();
            store.edit(&r.dossier, |tx| {
                dossier::modify_hazard(tx, &r.record, |h| {
                    h.photos.extend(photos);
                    Ok(())
                })
            })?;
            out.emit(json!({ "id": r.record, "added": count }), || {
                format!("已为隐患 {} 添加照片 {count} 张", r.record)
            });
        }
        HazardCmd::Delete { hazard } => {
            let r = store.find_hazard(&hazard)?;
            store.edit(&r.dossier, |tx| {
                dossier::modify_hazard(tx, &r.record, |h| {
                    h.deleted = true;
                    Ok(())
                })
            })?;
            out.emit(json!({ "id": r.record, "deleted": true }), || format!("已删除隐患 {}（记录保留备查）", r.record));
        }
        HazardCmd::List { campaign, enterprise, level, status, all } => {
            let mut rows = Vec::new();
            let dossiers = match (&campaign, &enterprise) {
                (Some(c), Some(e)) => vec![open_dossier(store, c, e)?],
                (Some(c), None) => {
                    let id = campaign_id(store, c)?;
                    store
                        .campaign(&id)?
                        .enterprises
                        .values()
                        .map(|e| e.dossier_id.clone())
                        .filter(|d| store.document(d).is_ok())
                        .collect()
                }
                (None, _) => store.doc_ids(DocKind::EnterpriseDossier)?,
            };
            for id in dossiers {
                let d = store.dossier(&id)?;
                let open = conflicts::conflicts(store.document(&id)?)?;
                for (hid, mut h) in d.hazards {
                    let marked = !conflicts::graver(&mut h, hid.as_str(), &open).is_empty();
                    let lp = Loop::of(&h.rectification);
                    let keep = (all || !h.deleted)
                        && level.is_none_or(|l| l == h.level)
                        && status.is_none_or(|s| s == lp.state.status);
                    if keep {
                        rows.push((d.enterprise.clone(), hid, h, lp, marked));
                    }
                }
            }
            rows.sort_by(|a, b| (&a.2.found_at, &a.1).cmp(&(&b.2.found_at, &b.1)));
            out.emit(
                json!(
                    rows.iter()
                        .map(
                            |(e, id, h, _, marked)| json!({"enterprise": e, "id": id, "hazard": h, "conflict": marked})
                        )
                        .collect::<Vec<_>>()
                ),
                || {
                    if rows.is_empty() {
                        return "没有符合条件的隐患。".into();
                    }
                    let mut s = format!("共 {} 条隐患：\n", rows.len());
                    for (_, id, h, lp, marked) in &rows {
                        let deleted = if h.deleted { "【已删除】" } else { "" };
                        let disputed = if lp.disputes.is_empty() { "" } else { "（有分歧）" };
                        let conflict = if *marked { "【冲突待裁定】" } else { "" };
                        s.push_str(&format!(
                            "{id}\t{}{conflict}\t{}{disputed}\t{}\t{}{deleted}\n",
                            h.level.label(),
                            lp.state.status.label(),
                            h.accident_type.name(),
                            h.title
                        ));
                    }
                    s.trim_end().to_owned()
                },
            );
        }
        HazardCmd::Show { hazard } => {
            let r = store.find_hazard(&hazard)?;
            let mut h = dossier::hazard(store.document(&r.dossier)?, &r.record)?;
            let campaign = dossier::read(store.document(&r.dossier)?)?.campaign_id;
            let zone = Zone::of(&store.campaign(&campaign)?);
            let open = conflicts::conflicts(store.document(&r.dossier)?)?;
            let marked = conflicts::graver(&mut h, r.record.as_str(), &open);
            out.emit(json!({ "id": r.record, "dossier": r.dossier, "hazard": h, "conflicts": marked }), || {
                let mut s = describe_hazard(&r.record.to_string(), &h, &zone);
                for c in &marked {
                    let values: Vec<String> = c.values.iter().map(|v| conflicts::display(&c.field, v)).collect();
                    s.push_str(&format!(
                        "\n【冲突待裁定】{}：{}（按较严重的显示，直到有人裁定：field conflicts resolve {} {}/{} 选定的值）",
                        c.label,
                        values.join(" / "),
                        r.dossier,
                        r.record.as_str().get(..10).unwrap_or(r.record.as_str()),
                        c.label
                    ));
                }
                s
            });
        }
    }
    Ok(())
}

fn describe_hazard(id: &str, h: &Hazard, zone: &Zone) -> String {
    let mut s = format!("隐患 {id}{}\n", if h.deleted { "【已删除】" } else { "" });
    s.push_str(&format!("标题：{}\n描述：{}\n", h.title, h.description));
    s.push_str(&format!(
        "类别：{}\t事故类型：{} {}\t等级：{}\n",
        h.hazard_kind.label(),
        h.accident_type.code,
        h.accident_type.name(),
        h.level.label()
    ));
    if let Some(c) = &h.major_hazard_criterion {
        let text = codes::criterion(c).map(|x| format!("{} {}", x.document_no, x.clause)).unwrap_or_default();
        s.push_str(&format!("重大隐患判定条款：{c}（{text}）\n"));
    }
    s.push_str(&format!("部位：{}", h.location.text));
    if let Some(g) = h.location.gps {
        s.push_str(&format!("\tGPS：{},{}（{}）", g.lat, g.lon, g.crs.label()));
    }
    s.push_str(&format!(
        "\n依据：{}\n发现人：{}\t发现时间：{}\n",
        h.legal_basis,
        h.inspector,
        zone.minute(&h.found_at)
    ));
    s.push_str(&format!("整改前照片：{} 张\n", h.photos.len()));
    s.push_str(&describe_loop(&Loop::of(&h.rectification), zone));
    s.trim_end().to_owned()
}

/// Where a hazard's rectification stands, its steps and what comes next.
fn describe_loop(lp: &Loop, zone: &Zone) -> String {
    let state = &lp.state;
    let mut s = format!("整改状态：{}", state.status.label());
    if let Some(p) = &state.plan {
        s.push_str(&format!("\t方式：{}", p.mode.label()));
        if let Some(d) = &p.deadline {
            s.push_str(&format!("\t期限：{d}"));
        }
        s.push_str(&format!("\n责任人：{}\t措施：{}", p.owner, p.measures));
    }
    s.push('\n');
    for d in &lp.disputes {
        s.push_str(&format!("【分歧待审核】{d}\n"));
    }
    if lp.earlier.is_some() || !lp.history.is_empty() {
        s.push_str("整改记录：\n");
    }
    if let Some(status) = lp.earlier {
        s.push_str(&format!("  （早期记录）{}\n", status.label()));
    }
    for e in &lp.history {
        let step = &e.step;
        let mut line = format!("  {} {}（记录人 {}）", zone.minute(&step.at), step.kind.label(), step.author);
        match step.kind {
            StepKind::Plan => {
                let mode = step.mode.map_or("", RectificationMode::label);
                line.push_str(&format!(
                    "：{mode}{}",
                    step.deadline.as_ref().map(|d| format!("，期限 {d}")).unwrap_or_default()
                ));
            }
            StepKind::Done => line.push_str(&format!(
                "：整改人 {}，照片 {} 张",
                step.rectified_by.as_deref().unwrap_or_default(),
                step.photos.len()
            )),
            StepKind::Verify => {
                line.push_str(&format!("：{}", step.result.map_or("", VerifyResult::label)));
                if !step.note.is_empty() {
                    line.push_str(&format!("，{}", step.note));
                }
            }
            StepKind::Reopen => line.push_str(&format!("：{}", step.note)),
            StepKind::Start => {}
        }
        if !e.counted {
            line.push_str("【不合规，未计入】");
        }
        s.push_str(&line);
        s.push('\n');
    }
    s.push_str(&format!("下一步：{}", state.next()));
    s
}

fn rectify_cmd(store: &mut Store, out: &Out, cmd: RectifyCmd) -> Result<()> {
    let (hazard, step) = match cmd {
        RectifyCmd::Plan { hazard, mode, deadline, owner, unit, measures, interim } => (
            hazard,
            Step {
                mode: Some(mode),
                deadline,
                owner,
                responsible_unit: unit,
                measures,
                interim_control: interim,
                ..Step::new(StepKind::Plan)
            },
        ),
        RectifyCmd::Start { hazard } => (hazard, Step::new(StepKind::Start)),
        RectifyCmd::Submit { hazard, by, photo } => {
            let photos = attach(store, &photo)?.into_iter().collect();
            (hazard, Step { rectified_by: Some(by.trim().to_owned()), photos, ..Step::new(StepKind::Done) })
        }
        RectifyCmd::Verify { hazard, result, note, photo } => {
            let Some(result) = VerifyResult::parse(result.trim()) else {
                bail!("复查结论“{result}”无效，应为 pass（通过）或 fail（不通过）");
            };
            let photos = attach(store, &photo)?.into_iter().collect();
            (hazard, Step { result: Some(result), note, photos, ..Step::new(StepKind::Verify) })
        }
        RectifyCmd::Reopen { hazard, reason } => (hazard, Step { note: reason, ..Step::new(StepKind::Reopen) }),
    };
    let r = store.find_hazard(&hazard)?;
    let signer = store.signer()?;
    let id = new_entity_id()?;
    let kind = step.kind;
    let lp = store.edit(&r.dossier, |tx| dossier::add_step(tx, &r.record, &id, step, &signer, rfc3339(now_ms())))?;
    let recorded = match (kind, lp.state.verification.as_ref()) {
        (StepKind::Verify, Some(v)) => format!("已记录{}：{}（复查人 {}）", kind.label(), v.result.label(), v.verifier),
        _ => format!("已记录{}（记录人 {}）", kind.label(), signer.name),
    };
    let message = format!("{recorded}；当前状态：{}；下一步：{}", lp.state.status.label(), lp.state.next());
    out.emit(json!({ "id": r.record, "step": id, "status": lp.state.status, "message": message }), || {
        format!("隐患 {}：{message}", r.record)
    });
    Ok(())
}

fn review_cmd(store: &mut Store, out: &Out, cmd: ReviewCmd) -> Result<()> {
    match cmd {
        ReviewCmd::Add { campaign, enterprise, date, summary, report } => {
            let zone = Zone::of(&store.campaign(&campaign_id(store, &campaign)?)?);
            dossier::check_accident_day(&date, &zone.day(&rfc3339(now_ms())).unwrap_or_default())?;
            let dossier_id = open_dossier(store, &campaign, &enterprise)?;
            let id = new_entity_id()?;
            let review = AccidentReview {
                accident_date: date,
                accident_summary: summary,
                report_ref: report,
                items: ReviewItems::default(),
            };
            store.edit(&dossier_id, |tx| dossier::add_review(tx, &id, &review))?;
            out.emit(json!({ "id": id }), || {
                format!("已登记四不放过核查 {id}（{} {}）", review.accident_date, review.accident_summary)
            });
        }
        ReviewCmd::Set { review, item, verdict, evidence, note } => {
            let r = store.find_review(&review)?;
            store.edit(&r.dossier, |tx| {
                dossier::modify_review_item(tx, &r.record, item, |i| {
                    i.verdict = Some(verdict);
                    if let Some(e) = evidence {
                        i.evidence = e;
                    }
                    if let Some(n) = note {
                        i.note = n;
                    }
                    Ok(())
                })
            })?;
            out.emit(json!({ "id": r.record, "item": item, "verdict": verdict }), || {
                format!("{}：{}", item.label(), verdict.label())
            });
        }
        ReviewCmd::List { campaign, enterprise } => {
            let id = open_dossier(store, &campaign, &enterprise)?;
            let d = store.dossier(&id)?;
            out.emit(serde_json::to_value(&d.accident_reviews)?, || {
                if d.accident_reviews.is_empty() {
                    return "尚无四不放过核查。".into();
                }
                let mut s = String::new();
                for (rid, r) in &d.accident_reviews {
                    s.push_str(&format!("{rid}\t{}\t{}\n", r.accident_date, r.accident_summary));
                    for kind in ReviewItemKind::ALL {
                        let item = r.items.item(*kind);
                        let verdict = item.verdict.map_or("未核查", Verdict::label);
                        s.push_str(&format!("  {}：{verdict}\t{}\n", kind.label(), item.evidence));
                    }
                }
                s.trim_end().to_owned()
            });
        }
    }
    Ok(())
}

fn conflicts_cmd(store: &mut Store, out: &Out, cmd: ConflictsCmd) -> Result<()> {
    match cmd {
        ConflictsCmd::List => {
            let entries = store.review_items()?;
            out.emit(serde_json::to_value(&entries)?, || {
                if entries.is_empty() {
                    return "没有需要审核的冲突。".into();
                }
                let mut s = String::new();
                for e in &entries {
                    s.push_str(&format!("企业档案 {}：\n", e.dossier));
                    for c in &e.conflicts {
                        s.push_str(&format!(
                            "  {}冲突 {}：{}有多个同时写入的值：{}\n",
                            if c.critical { "【安全关键】" } else { "" },
                            c.path,
                            c.label,
                            c.values.iter().map(|v| conflicts::display(&c.field, v)).collect::<Vec<_>>().join(" / ")
                        ));
                    }
                    for r in &e.rules {
                        s.push_str(&format!("  需审核 隐患 {}：{}\n", r.hazard, r.message));
                    }
                }
                if entries.iter().any(|e| !e.conflicts.is_empty()) {
                    s.push_str(
                        "裁定冲突：field conflicts resolve 企业档案编号 冲突路径（或 隐患编号/字段名，如 01M98/隐患等级） 选定的值（上面列出的值之一，可写中文）",
                    );
                }
                s.trim_end().to_owned()
            });
        }
        ConflictsCmd::Resolve { dossier: d, path, value } => {
            let id: DocId = d.parse()?;
            let path = conflict_path(store, &id, &path)?;
            store.edit(&id, |tx| conflicts::resolve(tx, &path, &value))?;
            out.emit(json!({ "dossier": id, "path": path, "value": value }), || format!("已裁定 {path} = {value}"));
        }
    }
    Ok(())
}

/// The path of a conflict of dossier `id` as given: the path `conflicts
/// list` shows, or a record's id (or its prefix) and the field's Chinese
/// name, such as `01M98HX4/隐患等级`.
fn conflict_path(store: &mut Store, id: &DocId, given: &str) -> Result<String> {
    let open = conflicts::conflicts(store.document(id)?)?;
    if open.iter().any(|c| c.path == given) {
        return Ok(given.to_owned());
    }
    let (record, field) = given.rsplit_once(['/', ' ']).unwrap_or(("", given));
    let record = record.trim().rsplit('/').next().unwrap_or_default();
    let matching: Vec<_> = open
        .iter()
        .filter(|c| c.record.starts_with(record) && (c.label == field.trim() || c.field == field.trim()))
        .collect();
    match matching.as_slice() {
        [one] => Ok(one.path.clone()),
        [] => bail!("企业档案 {id} 中没有“{given}”这处冲突；field conflicts list 列出全部冲突"),
        _ => bail!("“{given}”对应 {} 处冲突，请写出隐患编号：如 编号前缀/{}", matching.len(), field.trim()),
    }
}

fn status(store: &mut Store, out: &Out) -> Result<()> {
    let (local, received) = store.change_counts()?;
    let campaigns = store.doc_ids(DocKind::Campaign)?.len();
    let mut hazards = 0;
    let mut open = 0;
    for id in store.doc_ids(DocKind::EnterpriseDossier)? {
        let tally = dossier::tally(&store.dossier(&id)?);
        hazards += tally.hazards;
        open += tally.open;
    }
    let review = store.review_items()?;
    let conflicts: usize = review.iter().map(|e| e.conflicts.len() + e.rules.len()).sum();
    let trusted = store.trusted()?.len();
    let missing = store.missing_photos()?;
    let standing = store.standing()?;
    let safe = standing.safe_to_leave();
    let Standing { enrolled, unreceipted: pending, owed, held } = standing;
    out.emit(
        json!({ "name": store.device_name(), "public_key": store.public_key().to_string(), "campaigns": campaigns,
                "hazards": hazards, "open_hazards": open, "conflicts": conflicts, "local_changes": local,
                "received_changes": received, "trusted_devices": trusted, "enrolled": enrolled,
                "unreceipted_changes": pending, "photos_not_at_hq": owed.photos,
                "photo_bytes_not_at_hq": owed.bytes, "safe_to_leave": safe, "missing_photos": missing,
                "held_back": held }),
        || {
            let mut safety = safety(enrolled, pending, owed);
            for h in &held {
                let line = if h.quarantined { quarantined_line(&h.doc, &h.reason) } else { withheld_line(&h.doc, &h.reason, "发出") };
                safety.push_str(&format!("\n上次与总部同步时：{line}"));
            }
            let photos = match missing {
                0 => String::new(),
                n => format!("\n隐患照片还有 {n} 张不在本机，执行 field sync 从总部或同伴取回。"),
            };
            format!(
                "使用人：{}\n检查活动 {campaigns} 个，隐患 {hazards} 条（未销号 {open} 条），待审核冲突 {conflicts} 处\n本机修改 {local} 次，收到修改 {received} 次，受信任设备 {trusted} 台\n{safety}{photos}",
                store.device_name()
            )
        },
    );
    Ok(())
}

/// Whether this device's work is all at HQ, in words: "safe to leave" only
/// when every change has HQ's receipt and HQ holds every photo of it.
fn safety(enrolled: bool, pending: usize, owed: field_client::PhotosOwed) -> String {
    let photos = |n: usize, bytes: u64| format!("{n} 张照片（{:.1} MB）", bytes as f64 / 1_000_000.0);
    match (enrolled, pending, owed.photos) {
        (false, _, _) => {
            "本设备尚未入网（field enroll），修改都还没有送到总部；请用 field bundle export 备份。".to_owned()
        }
        (true, 0, 0) => "所有本机修改和照片都已送达总部并取得回执，可以放心离开。".to_owned(),
        (true, 0, n) => {
            format!("修改都已取得总部回执，但还有 {} 没有送达总部，请执行 field sync。", photos(n, owed.bytes))
        }
        (true, c, 0) => format!("还有 {c} 次本机修改没有取得总部回执，请执行 field sync。"),
        (true, c, n) => {
            format!("还有 {c} 次本机修改没有取得总部回执、{} 没有送达总部，请执行 field sync。", photos(n, owed.bytes))
        }
    }
}

/// What `field sync` shows on standard error while it runs: a spinner with
/// the time taken while it connects and syncs documents (connecting to an
/// unreachable HQ takes up to 30 s; in the end-of-day rush a tablet may wait
/// its turn), then the photos' progress. Hidden with `--json`; where
/// standard error is not a terminal (a station's script, a log) one line
/// says whom it is connecting to instead.
fn sync_bar(out: &Out, peer: &str) -> indicatif::ProgressBar {
    if out.json {
        return indicatif::ProgressBar::hidden();
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!("正在连接{peer} 并同步……");
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg}（已用 {elapsed}）") {
        bar.set_style(style);
    }
    bar.set_message(format!("正在与{peer} 同步"));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// Turns the spinner of [`sync_bar`] into the photos' progress bar.
fn photo_style(bar: &indicatif::ProgressBar) {
    let style =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} 剩余 {eta}")
            .map(|s| s.progress_chars("=> "));
    if let Ok(style) = style {
        bar.set_style(style);
    }
}

fn write_out(path: Option<&Path>, bytes: &[u8], force: bool) -> Result<()> {
    match path {
        Some(p) => Ok(field_client::files::write_new(p, bytes, force)?),
        None => {
            say(bytes);
            Ok(())
        }
    }
}

fn export_cmd(store: &mut Store, out: &Out, cmd: ExportCmd) -> Result<()> {
    // The register's photos, written beside it once it is written.
    let mut photos = None;
    let (path, bytes, what, force) = match cmd {
        ExportCmd::Json { campaign, out: path, force } => {
            let id = campaign_id(store, &campaign)?;
            let data = export::campaign(store, &id)?;
            let mut bytes = serde_json::to_vec_pretty(&data)?;
            bytes.push(b'\n');
            (path, bytes, "JSON", force)
        }
        ExportCmd::Csv { campaign, out: path, photos: with_photos, force } => {
            let id = campaign_id(store, &campaign)?;
            let data = export::campaign(store, &id)?;
            let open = export::open_conflicts(store, &data)?;
            let csv = export::register_csv(&data, &open)?;
            photos = with_photos.then_some(data);
            (path, csv, "隐患台账 CSV", force)
        }
    };
    write_out(path.as_deref(), &bytes, force)?;
    let Some(p) = path else { return Ok(()) };
    let shown = std::path::absolute(&p).unwrap_or(p);
    out.emit(json!({ "file": shown, "bytes": bytes.len() }), || {
        format!("已导出{what}到 {}（{} 字节）", shown.display(), bytes.len())
    });
    if let Some(data) = photos {
        let dir = shown.parent().unwrap_or(Path::new("/"));
        let (written, missing) = export::register_photos(store, &data, dir, force)?;
        let folder = dir.join("照片");
        out.emit(json!({ "photos": written, "photos_dir": folder, "missing_photos": missing }), || {
            let mut text = format!("已写出台账列出的照片 {written} 张到 {}", folder.display());
            if !missing.is_empty() {
                text.push_str(&format!("；本机没有其中 {} 张：{}", missing.len(), missing.join("、")));
            }
            text
        });
    }
    Ok(())
}

fn bundle_cmd(store: &mut Store, out: &Out, cmd: BundleCmd) -> Result<()> {
    match cmd {
        BundleCmd::Export { out: path, force } => {
            let bytes = store.export_bundle()?;
            field_client::files::write_new(&path, &bytes, force)?;
            let path = std::path::absolute(&path).unwrap_or(path);
            out.emit(json!({ "file": path, "bytes": bytes.len() }), || {
                format!(
                    "已导出数据包 {}（{} 字节）。对方需先信任本设备公钥：{}",
                    path.display(),
                    bytes.len(),
                    store.public_key()
                )
            });
        }
        BundleCmd::Import { file } => {
            let bytes = read_bundle_file(&file)?;
            let report = store.import_bundle(&bytes)?;
            let total: usize = report.changes.values().sum();
            out.emit(serde_json::to_value(&report)?, || {
                if total == 0 && report.photos == 0 {
                    format!("数据包来自 {}，没有新内容（已全部导入过）。", report.exporter)
                } else {
                    format!(
                        "已导入数据包：{} 个文档共 {total} 次修改，照片 {} 张（来自 {}）",
                        report.changes.len(),
                        report.photos,
                        report.exporter
                    )
                }
            });
        }
    }
    Ok(())
}

/// Reads a bundle file, refusing oversized files before reading them.
fn read_bundle_file(path: &Path) -> Result<Vec<u8>, StoreError> {
    use std::io::Read;
    let limit = sync_core::bundle::MAX_BUNDLE_BYTES;
    let unreadable = |e: std::io::Error| {
        StoreError::Invalid(format!("无法读取 {}：{}", path.display(), field_client::words::io(&e)))
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let size = file.metadata().map_err(unreadable)?.len();
    if size > limit {
        return Err(sync_core::bundle::BundleError::TooLarge { size, limit }.into());
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(unreadable)?;
    if bytes.len() as u64 > limit {
        return Err(sync_core::bundle::BundleError::TooLarge { size: bytes.len() as u64, limit }.into());
    }
    Ok(bytes)
}

fn parse_with<T: Copy>(s: &str, parse: fn(&str) -> Option<T>, all: &[T], show: fn(T) -> String) -> Result<T, String> {
    parse(s).ok_or_else(|| format!("可选值：{}", all.iter().map(|v| show(*v)).collect::<Vec<_>>().join("、")))
}

macro_rules! enum_parser {
    ($name:ident, $ty:ty) => {
        fn $name(s: &str) -> Result<$ty, String> {
            parse_with(s, <$ty>::parse, <$ty>::ALL, |v| format!("{}（{}）", v.as_str(), v.label()))
        }
    };
}

enum_parser!(parse_hazard_kind, HazardKind);
enum_parser!(parse_level, HazardLevel);
enum_parser!(parse_status, RectificationStatus);
enum_parser!(parse_mode, RectificationMode);
enum_parser!(parse_verdict, Verdict);
enum_parser!(parse_review_item, ReviewItemKind);
enum_parser!(parse_doc_result, DocumentResult);
enum_parser!(parse_crs, Crs);
enum_parser!(parse_domain, Domain);

fn parse_campaign_kind(s: &str) -> Result<CampaignKind, String> {
    match s {
        "construction" => Ok(CampaignKind::ConstructionJointInspection),
        "mine" => Ok(CampaignKind::MineSurvey),
        "self" => Ok(CampaignKind::SelfInspection),
        other => CampaignKind::parse(other)
            .ok_or_else(|| "可选值：construction（建筑施工联合检查）、mine（矿山企业调研）、self（企业自查）".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The relay's console says which documents it holds back when that
    /// changes, not at every forward.
    #[test]
    fn documents_held_back_are_told_once_until_that_changes() {
        let told = Told::default();
        let doc: DocId = format!("dos-{}", "ab".repeat(16)).parse().unwrap();
        let mut summary = Summary::default();
        summary.quarantined.insert(doc.clone(), "隔离原因".into());
        assert_eq!(told.held_back_news(&summary).quarantined.len(), 1);
        assert!(told.held_back_news(&summary).quarantined.is_empty(), "said again at the next forward");
        summary.withheld.insert(doc, "作者凭证已吊销".into());
        assert_eq!(told.held_back_news(&summary).withheld.len(), 1, "a change is told");
        let cleared = Summary::default();
        assert!(told.held_back_news(&cleared).quarantined.is_empty());
        assert_eq!(told.held_back_news(&summary).quarantined.len(), 1, "held back again after clearing");
    }

    #[test]
    fn every_argument_is_explained_in_chinese() {
        assert_eq!(field_client::cli::untranslated(Cli::command()), Vec::<String>::new());
    }
}
