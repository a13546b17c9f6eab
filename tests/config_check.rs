//! Issue 25: `--config.check` reports every error it finds, each naming its field, then the
//! warnings the exporter would log at start (a pinned certificate that does not list the host,
//! verification off), and exits 1 only for errors. The real binary, run once.

mod common;

use common::pki::Leaf;
use common::*;

#[test]
fn every_error_is_reported_with_its_field_and_the_exit_is_1() {
    let dir = tempdir("check-errors");
    let path = dir.join("pbxes.yml");
    std::fs::write(
        &path,
        "auth_modules:\n  main:\n    username: api\n    password: x\n\
         targets:\n  a:\n    url: ftp://x\n    auth: main\n  b:\n    url: http://10.0.0.6\n    auth: main\n    timeout: 5\n  \
         c:\n    url: http://10.0.0.7\n    auth: main\n    collectors: [trunks]\n",
    )
    .unwrap();
    let out = run_exporter_once(
        &["--config.file", path.to_str().unwrap(), "--config.check"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "yeastar-exporter: config invalid: targets.a.url: \"ftp://x\" must start with http:// or https://\n\
         yeastar-exporter: config invalid: targets.b.timeout: not a valid duration string: \"5\"\n\
         yeastar-exporter: config invalid: targets.c.collectors: must include calls (yeastar_up is about it)\n"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");

    // An auth module's own error once, not again for each target naming it; a second target
    // error beside it.
    std::fs::write(
        &path,
        "auth_modules:\n  main:\n    username: api\n\
         targets:\n  a:\n    url: http://10.0.0.5\n    auth: main\n  b:\n    url: http://10.0.0.5/\n    auth: main\n",
    )
    .unwrap();
    let out = run_exporter_once(
        &["--config.file", path.to_str().unwrap(), "--config.check"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "yeastar-exporter: config invalid: auth_modules.main.password_file: required (or password)\n\
         yeastar-exporter: config invalid: targets.b.url: same URL as target a\n"
    );

    // The event checks (issue 24) each on their own too: HTTP events in static-token mode, an
    // event source that is not an address, beside an error of another target.
    let token = dir.join("token");
    std::fs::write(&token, "statictoken0000000000000000000000").unwrap();
    std::fs::write(
        &path,
        format!(
            "auth_modules:\n  main:\n    username: api\n    password: x\n  fixed:\n    token_file: {}\n\
             targets:\n  a:\n    url: http://10.0.0.5\n    auth: fixed\n    events: http\n  \
             b:\n    url: http://10.0.0.6\n    auth: main\n    events_source_addresses: [pbx.example]\n  \
             c:\n    url: http://10.0.0.7\n    auth: nobody\n",
            token.display()
        ),
    )
    .unwrap();
    let out = run_exporter_once(
        &["--config.file", path.to_str().unwrap(), "--config.check"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "yeastar-exporter: config invalid: targets.a.events: HTTP events need logins: each login registers the receiver's path with its own secret, and static-token mode never logs in (use an auth module or --pbx.username with a password)\n\
         yeastar-exporter: config invalid: targets.b.events_source_addresses: \"pbx.example\" is not an IP address (list the addresses the PBX's event reports come from, e.g. 192.0.2.7, 2001:db8::7; no names, no ranges)\n\
         yeastar-exporter: config invalid: targets.c.auth: unknown auth module \"nobody\"\n"
    );
}

#[test]
fn warnings_alone_are_printed_and_the_exit_is_0() {
    let dir = tempdir("check-warnings");
    let pinned = Leaf::self_signed(&["pbx.example"]);
    let (cert, _key) = pinned.write(&dir, "pbx");
    let path = dir.join("pbxes.yml");
    std::fs::write(
        &path,
        format!(
            "auth_modules:\n  main:\n    username: api\n    password: x\n\
             targets:\n  lab:\n    url: https://10.0.0.5\n    auth: main\n    insecure_skip_verify: true\n  \
             pinned:\n    url: https://10.0.0.6:8088\n    auth: main\n    ca_file: {}\n  plain:\n    url: http://10.0.0.7\n    auth: main\n",
            cert.display()
        ),
    )
    .unwrap();
    let out = run_exporter_once(
        &["--config.file", path.to_str().unwrap(), "--config.check"],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "warning: target lab (pbx=https://10.0.0.5:443): TLS certificate verification is off for this PBX (insecure_skip_verify): anyone on the network path can impersonate it and read its password and token; prefer ca_file\n\
             warning: target pinned (pbx=https://10.0.0.6:8088): no certificate in {} lists 10.0.0.6 (it lists: pbx.example, rcgen self signed cert); the PBX is still trusted if it presents exactly one of these certificates (pinned), but not one merely signed by them\n\
             config OK: 3 target(s)\n",
            cert.display()
        )
    );
}
