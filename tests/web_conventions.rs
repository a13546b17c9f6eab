//! Issue 25: the exporter-toolkit conventions. Repeated `--web.listen-address` serves on every
//! address; `--web.systemd-socket` serves on the sockets systemd passes (the real binary given a
//! bound socket as fd 3 with LISTEN_FDS and LISTEN_PID, as a .socket unit starts it); an unknown
//! `/probe` target is answered with the name it got; the landing page's times are RFC 3339 and
//! "3m ago", and it links to the documentation it serves.

mod common;

use common::*;
use yeastar_exporter::support::clock::ManualClock;

fn get(url: &str) -> (u16, String) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let r = reqwest::Client::new()
            .get(url)
            .timeout(std::time::Duration::from_secs(60))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

#[test]
fn every_listen_address_serves() {
    let (a, b) = (free_port(), free_port());
    let spawned = spawn_exporter(&[
        "--demo",
        "--web.listen-address",
        &format!("127.0.0.1:{a}"),
        "--web.listen-address",
        &format!("127.0.0.1:{b}"),
    ]);
    for port in [a, b] {
        assert_eq!(
            get(&format!("http://127.0.0.1:{port}/-/healthy")),
            (200, "Healthy\n".to_string())
        );
        let (status, text) = get(&format!("http://127.0.0.1:{port}/metrics"));
        assert_eq!(status, 200);
        assert_eq!(must(&text, "yeastar_up"), 1.0);
    }
    // One "listening" line per address, in order: the harness read the first (its base URL);
    // the next two follow, the harness's own 127.0.0.1:0 third.
    assert_eq!(spawned.base, format!("http://127.0.0.1:{a}"));
    let mut spawned = spawned;
    let listening: Vec<String> = spawned
        .lines
        .by_ref()
        .map_while(Result::ok)
        .filter(|l| l.contains("yeastar-exporter listening"))
        .take(2)
        .collect();
    assert!(
        listening[0].contains(&format!("address=127.0.0.1:{b} ")),
        "{}",
        listening[0]
    );
    assert!(
        listening[1].contains("address=127.0.0.1:") && !listening[1].contains(&format!(":{a} ")),
        "{}",
        listening[1]
    );
    let mut child = spawned.child;
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn systemd_socket_activation_serves_on_the_inherited_socket() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    // What systemd does for a .socket unit (sd_listen_fds(3)): it holds the bound socket and
    // starts the service with it as fd 3, LISTEN_FDS=1 and LISTEN_PID its pid. The shell sets
    // LISTEN_PID to its own pid and execs the binary, which keeps that pid.
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    let fd = socket.as_raw_fd();
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args([
        "-c",
        r#"export LISTEN_PID=$$ LISTEN_FDS=1; exec "$0" "$@""#,
        env!("CARGO_BIN_EXE_yeastar-exporter"),
        "--demo",
        "--web.systemd-socket",
        // Ignored with --web.systemd-socket, as exporter-toolkit does.
        "--web.listen-address",
        "127.0.0.1:1",
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped());
    // SAFETY: between fork and exec only dup2 and fcntl, both async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                // dup2 onto itself would keep close-on-exec: clear it instead.
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    drop(socket);
    // Connections wait in the socket's queue until the exporter takes it and answers.
    let (status, text) = get(&format!("http://127.0.0.1:{port}/metrics"));
    assert_eq!(status, 200, "{text}");
    assert_eq!(must(&text, "yeastar_up"), 1.0);
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/-/healthy")),
        (200, "Healthy\n".to_string())
    );
    signal_child(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let listening: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("yeastar-exporter listening"))
        .collect();
    assert_eq!(listening.len(), 1, "{log}");
    assert!(
        listening[0].contains(&format!("address=127.0.0.1:{port} "))
            && listening[0].contains("systemd_socket=true"),
        "{log}"
    );
}

#[test]
fn systemd_socket_without_sockets_says_so() {
    let out = run_exporter_once(&["--demo", "--web.systemd-socket"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().last().unwrap(),
        "yeastar-exporter: --web.systemd-socket: LISTEN_PID is not set: start the exporter from its .socket unit"
    );
}

#[tokio::test]
async fn unknown_targets_are_named_and_the_landing_page_reads_as_words() {
    let pbx = FakePbx::start().await;
    let clock = ManualClock::new(1_796_297_000);
    let exporter = Running::start(config(&pbx.url(), &[]), clock.clone()).await;
    let (status, body) = exporter.get("/probe?target=x").await;
    assert_eq!(
        (status, body.as_str()),
        (
            400,
            "unknown target \"x\": not a configured target name or URL\n"
        )
    );
    let (_, page) = exporter.get("/").await;
    assert!(page.contains("<td>not scraped yet</td>"), "{page}");
    exporter.scrape().await;
    clock.advance_secs(185);
    let (_, page) = exporter.get("/").await;
    assert!(
        page.contains("<td>up (2026-12-03T11:23:20Z, 3m ago)</td>"),
        "{page}"
    );
    for (name, about) in [
        (
            "README.md",
            "install, connect a PBX, multi-target, alerts, troubleshooting",
        ),
        ("metrics.md", "every metric and collector"),
        ("configuration.md", "every flag and config-file field"),
    ] {
        assert!(
            page.contains(&format!(
                "<li><a href=\"/docs/{name}\">{name}</a>: {about}</li>"
            )),
            "{page}"
        );
    }
    let (status, readme) = exporter.get("/docs/README.md").await;
    assert_eq!(status, 200);
    assert_eq!(
        readme,
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
    );
    let (status, metrics_doc) = exporter.get("/docs/metrics.md").await;
    assert_eq!(status, 200);
    assert_eq!(
        metrics_doc,
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap()
    );
    assert_eq!(exporter.get("/docs/../Cargo.toml").await.0, 404);
    exporter.stop().await;
}
