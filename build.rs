//! Records the git revision, the build date, the rustc version and the target for
//! `yeastar_exporter_build_info` and `--version`. The date is the commit's (or
//! `SOURCE_DATE_EPOCH`'s), so a build is reproducible.
use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd)
        .args(args)
        .env("TZ", "UTC")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    let revision = std::env::var("YEASTAR_EXPORTER_REVISION")
        .ok()
        .or_else(|| output("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = output(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let date = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|e| output("date", &["-u", "-d", &format!("@{e}"), "+%Y%m%d-%H:%M:%S"]))
        .or_else(|| {
            output(
                "git",
                &[
                    "log",
                    "-1",
                    "--date=format-local:%Y%m%d-%H:%M:%S",
                    "--format=%cd",
                ],
            )
        })
        .unwrap_or_else(|| "unknown".into());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=YEASTAR_EXPORTER_BUILD_DATE={date}");
    println!("cargo:rustc-env=YEASTAR_EXPORTER_TARGET={target}");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rustc-env=YEASTAR_EXPORTER_REVISION={revision}");
    println!("cargo:rustc-env=YEASTAR_EXPORTER_RUSTC_VERSION={rustc_version}");
    println!("cargo:rerun-if-env-changed=YEASTAR_EXPORTER_REVISION");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
