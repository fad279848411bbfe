//! Command-line parsing in Chinese, for the `field` CLI and the server.
//!
//! clap writes its help headings and its parse errors in English. Here the
//! help of every (sub)command gets Chinese headings, flags and value names,
//! and a parse error is told in Chinese from clap's error kind and context.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, Command, CommandFactory, FromArgMatches};

const TEMPLATE: &str = "\
{about-with-newline}
用法：{usage}

{all-args}{after-help}";

/// Parses the process arguments into `P`. Help and version are printed as
/// clap would (exit 0); a bad command line prints a Chinese error and a
/// pointer to the (sub)command's `--help` on stderr, and exits with status 2.
pub fn parse<P: CommandFactory + FromArgMatches>() -> P {
    let mut command = localized(P::command(), true);
    let args = with_help_word(std::env::args_os());
    let parsed = command.try_get_matches_from_mut(&args).and_then(|m| P::from_arg_matches(&m));
    match parsed {
        Ok(parsed) => parsed,
        // A command given without its subcommand shows that command's help.
        Err(e) if e.kind() == ErrorKind::DisplayVersion => e.exit(),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand) => {
            use std::io::Write;
            let help = chinese_usage(&e.render().to_string());
            // A closed pipe (`field --help | head`) is no error.
            let _ =
                if e.use_stderr() { write!(std::io::stderr(), "{help}") } else { write!(std::io::stdout(), "{help}") };
            std::process::exit(e.exit_code())
        }
        Err(e) => {
            eprintln!("错误：{}\n查看用法：{} --help", message(&e), command_path(&command, &args));
            std::process::exit(2)
        }
    }
}

/// The (sub)command `args` name, as `field hazard add`: where the help for
/// a mistake in them is.
fn command_path(command: &Command, args: &[std::ffi::OsString]) -> String {
    let mut path = command.get_name().to_owned();
    let mut current = command;
    for arg in args.iter().skip(1) {
        if let Some(sub) = arg.to_str().and_then(|name| current.find_subcommand(name)) {
            path = format!("{path} {}", sub.get_name());
            current = sub;
        }
    }
    path
}

/// `help [command…]` as `[command…] --help` (clap's own help subcommand
/// would list itself in English).
fn with_help_word(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut args: Vec<_> = args.collect();
    if args.get(1).is_some_and(|a| a == "help") {
        args.remove(1);
        args.push("--help".into());
    }
    args
}

/// Help with clap's one English word left in a usage line (it has no
/// setting for it) said in Chinese.
fn chinese_usage(help: &str) -> String {
    help.replace("[OPTIONS]", "[选项]")
}

/// Chinese headings, value names and help flags on `command` and all its
/// subcommands.
fn localized(command: Command, top: bool) -> Command {
    let mut command = command
        .help_template(TEMPLATE)
        .subcommand_help_heading("命令")
        .subcommand_value_name("命令")
        .next_help_heading("选项")
        .disable_help_flag(true)
        .disable_help_subcommand(true)
        .arg(Arg::new("help").short('h').long("help").action(ArgAction::Help).help("显示帮助").global(true));
    if top {
        command = command
            .disable_version_flag(true)
            .arg(Arg::new("version").short('V').long("version").action(ArgAction::Version).help("显示版本"));
    }
    command.mut_args(localized_arg).mut_subcommands(|sub| localized(sub, false))
}

/// A Chinese heading, and the environment variable, default and choices
/// of `arg` said in its help instead of clap's English brackets.
fn localized_arg(mut arg: Arg) -> Arg {
    let mut notes = Vec::new();
    if let Some(env) = arg.get_env() {
        notes.push(format!("环境变量 {}", env.to_string_lossy()));
        arg = arg.hide_env(true);
    }
    // Flags have defaults and choices too ("false", "true"): not worth saying.
    if arg.get_action().takes_values() {
        if let Some(name) = value_name(arg.get_id().as_str()) {
            arg = arg.value_name(name);
        }
        // An empty default ("no note") is not worth saying either.
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .filter(|v| !v.is_empty())
            .collect();
        if !defaults.is_empty() {
            notes.push(format!("默认 {}", defaults.join("、")));
        }
        arg = arg.hide_default_value(true);
        let choices: Vec<String> = arg.get_possible_values().iter().map(|v| v.get_name().to_owned()).collect();
        if !choices.is_empty() {
            notes.push(format!("可选：{}", choices.join("、")));
            arg = arg.hide_possible_values(true);
        }
    }
    let heading = if arg.is_positional() { "参数" } else { "选项" };
    if arg.get_help_heading().is_none() {
        arg = arg.help_heading(heading);
    }
    if notes.is_empty() {
        return arg;
    }
    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
    arg.help(format!("{help}（{}）", notes.join("；")))
}

/// The Chinese name of the value an argument takes, by the argument's id,
/// one word for one meaning across the `field` CLI and the server. An id not
/// here keeps clap's English name, which [`untranslated`] reports.
fn value_name(id: &str) -> Option<&'static str> {
    Some(match id {
        "home" | "data" => "目录",
        "campaign" => "活动编号",
        "enterprise" => "企业",
        "hazard" => "隐患编号",
        "review" => "核查编号",
        "dossier" => "档案编号",
        "checklist" => "清单编号",
        "from_checklist" => "条目编号",
        "serial" => "凭证编号",
        "key" | "device" => "公钥",
        "code" => "信用代码",
        "enrollment" => "入网码",
        "name" => "名称",
        "title" => "标题",
        "description" => "描述",
        "summary" => "概况",
        "kind" => "类型",
        "document_type" => "资料类型",
        "accident_type" => "事故类型",
        "domain" => "行业",
        "level" => "级别",
        "status" => "状态",
        "mode" => "方式",
        "role" => "角色",
        "result" => "结果",
        "verdict" => "结论",
        "item" => "核查项",
        "criterion" => "条款",
        "basis" => "依据",
        "location" => "部位",
        "gps" => "坐标",
        "crs" => "坐标系",
        "date" | "start" | "end" | "deadline" | "expires" => "日期",
        "days" => "天数",
        "forward_every" => "秒数",
        "note" => "备注",
        "evidence" => "证据",
        "report" => "文号",
        "measures" | "interim" => "措施",
        "reason" => "原因",
        "owner" | "by" | "inspector" => "姓名",
        "inspectors" => "人员",
        "org" | "subcontractor" | "unit" => "单位",
        "project" => "项目",
        "address" => "地址",
        "server" | "peer" | "listen" | "http" | "quic" => "地址",
        "section" => "章节",
        "photo" | "files" => "照片",
        "file" | "out" => "文件",
        "format" => "格式",
        "path" => "路径",
        "value" => "值",
        _ => return None,
    })
}

/// What `command`'s help leaves unsaid or in English: each argument with no
/// help text or without a Chinese value name, as `command path: --arg`. For
/// a test that every argument of a CLI is explained.
pub fn untranslated(command: Command) -> Vec<String> {
    fn walk(command: &Command, path: &str, gaps: &mut Vec<String>) {
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            let unnamed = arg.get_action().takes_values()
                && arg.get_value_names().unwrap_or_default().iter().any(|name| name.is_ascii());
            if arg.get_help().is_none() || unnamed {
                gaps.push(format!("{path}: {id}"));
            }
        }
        for sub in command.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), gaps);
        }
    }
    let mut command = localized(command, true);
    command.build();
    let mut gaps = Vec::new();
    walk(&command, command.get_name(), &mut gaps);
    gaps
}

/// The error in Chinese, from its kind and context.
fn message(e: &clap::Error) -> String {
    let get = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => s.clone(),
        Some(ContextValue::Strings(list)) => list.join("、"),
        Some(ContextValue::StyledStr(s)) => s.to_string(),
        Some(ContextValue::StyledStrs(list)) => list.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("、"),
        Some(ContextValue::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let arg = get(ContextKind::InvalidArg);
    let value = get(ContextKind::InvalidValue);
    let mut text = match e.kind() {
        ErrorKind::InvalidValue => {
            let valid = get(ContextKind::ValidValue);
            if value.is_empty() {
                format!("参数 {arg} 需要一个值")
            } else if valid.is_empty() {
                format!("参数 {arg} 的值“{value}”无效")
            } else {
                format!("参数 {arg} 的值“{value}”无效，可选：{valid}")
            }
        }
        ErrorKind::ValueValidation => {
            // Our parsers explain in Chinese; the standard library's (numbers,
            // addresses) in English, which is left out.
            let why = std::error::Error::source(e).map(|s| s.to_string()).filter(|s| !s.is_ascii()).unwrap_or_default();
            format!("参数 {arg} 的值“{value}”无效{}", if why.is_empty() { String::new() } else { format!("：{why}") })
        }
        ErrorKind::UnknownArgument => format!("无法识别的参数“{arg}”"),
        ErrorKind::InvalidSubcommand => format!("无法识别的命令“{}”", get(ContextKind::InvalidSubcommand)),
        ErrorKind::MissingRequiredArgument => format!("缺少必填参数：{arg}"),
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => "缺少命令".to_owned(),
        ErrorKind::ArgumentConflict => format!("参数 {arg} 不能与 {} 同时使用", get(ContextKind::PriorArg)),
        ErrorKind::TooManyValues | ErrorKind::TooFewValues | ErrorKind::WrongNumberOfValues => {
            format!("参数 {arg} 的值个数不对")
        }
        ErrorKind::NoEquals => format!("参数 {arg} 须用“=”给值"),
        ErrorKind::InvalidUtf8 => "参数中含有无效的文字编码".to_owned(),
        _ => "命令行参数有误".to_owned(),
    };
    for kind in [ContextKind::SuggestedArg, ContextKind::SuggestedSubcommand, ContextKind::SuggestedValue] {
        let suggested = get(kind);
        if !suggested.is_empty() {
            text.push_str(&format!("；是否想用“{suggested}”？"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// 测试命令
    #[derive(Parser, Debug)]
    #[command(name = "demo", version)]
    struct Demo {
        /// 姓名
        #[arg(long)]
        name: String,
        /// 数量
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// 级别
        #[arg(long, value_parser = ["甲", "乙"])]
        level: Option<String>,
        #[arg(long)]
        note: Option<String>,
    }

    fn error(args: &[&str]) -> String {
        let mut command = localized(Demo::command(), true);
        let e = command.try_get_matches_from_mut(args).unwrap_err();
        message(&e)
    }

    #[test]
    fn parse_errors_are_told_in_chinese() {
        assert_eq!(error(&["demo"]), "缺少必填参数：--name <名称>");
        assert_eq!(error(&["demo", "--name", "张三", "--count", "x"]), "参数 --count <COUNT> 的值“x”无效");
        assert_eq!(
            error(&["demo", "--name", "张三", "--level", "丙"]),
            "参数 --level <级别> 的值“丙”无效，可选：甲、乙"
        );
        assert_eq!(error(&["demo", "--name", "张三", "--nmae"]), "无法识别的参数“--nmae”；是否想用“--name”？");
        assert!(error(&["demo", "--name", "张三", "extra"]).starts_with("无法识别的参数“extra”"));
    }

    #[test]
    fn the_help_word_asks_for_help() {
        let args = |list: &[&str]| list.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(with_help_word(args(&["field", "help", "sync"]).into_iter()), args(&["field", "sync", "--help"]));
        assert_eq!(with_help_word(args(&["field", "sync"]).into_iter()), args(&["field", "sync"]));
    }

    #[test]
    fn help_has_chinese_headings() {
        let mut command = localized(Demo::command(), true);
        let help = chinese_usage(&command.render_help().to_string());
        assert!(help.contains("用法：demo [选项] --name <名称>"), "{help}");
        assert!(help.contains("选项") && help.contains("显示帮助"), "{help}");
        assert!(help.contains("数量（默认 1）") && help.contains("可选：甲、乙"), "{help}");
        assert!(!help.contains("Usage") && !help.contains("Options") && !help.contains("default"), "{help}");
    }

    #[test]
    fn a_mistake_points_to_its_subcommands_help() {
        #[derive(Parser)]
        #[command(name = "tool")]
        enum Tool {
            /// 隐患
            #[command(subcommand)]
            Hazard(Hazard),
        }
        #[derive(clap::Subcommand)]
        enum Hazard {
            /// 记录
            Add,
        }
        let command = localized(Tool::command(), true);
        let args = |list: &[&str]| list.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(command_path(&command, &args(&["tool", "hazard", "add", "--nope"])), "tool hazard add");
        assert_eq!(command_path(&command, &args(&["tool", "--nope", "hazard"])), "tool hazard");
        assert_eq!(command_path(&command, &args(&["tool", "add"])), "tool");
    }

    #[test]
    fn unexplained_arguments_are_found() {
        assert_eq!(untranslated(Demo::command()), ["demo: count", "demo: note"]);
    }
}
