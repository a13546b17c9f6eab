//! The floor: exactly the work of one probe with the least machinery, as a server the bench
//! drives like the exporter. One thread (a current-thread runtime), raw HTTP/1.1 over tokio
//! sockets, no client library: for `GET /probe?target=pbx-N` it makes the same six requests the
//! exporter's default collectors make (`call/query` inbound and outbound, `extension/query_call`,
//! `trunk/list`, `extension/list`, `deviceinfo/query`), each over a new connection (the PBX closes
//! every connection), reads each answer whole, parses it into `serde_json::Value`, and writes a
//! text page of comparable content: calls merged by callid, members by kind and status, trunk legs,
//! trunks, extensions by status, the device. Each target logs in once (the warm-up does it).
//!
//! Started by the bench as a copy of its own process (`FLOOR_LISTEN`, `FLOOR_TARGETS`), so its
//! CPU and memory are measured exactly as the exporter's are.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::rc::Rc;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const API: &str = "/api/v2.0.0";

/// Runs the floor server until killed: `listen` is `127.0.0.1:PORT`, `targets` the PBXes'
/// `host:port`, `password_md5` the API password's MD5.
pub fn serve(listen: &str, targets: Vec<String>, password_md5: String) -> ! {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = TcpListener::bind(listen).await.unwrap();
        let state = Rc::new(Floor {
            targets,
            password_md5,
            tokens: RefCell::new(HashMap::new()),
        });
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let state = state.clone();
            tokio::task::spawn_local(async move {
                let _ = state.connection(stream).await;
            });
        }
    });
    unreachable!()
}

struct Floor {
    targets: Vec<String>,
    password_md5: String,
    tokens: RefCell<HashMap<usize, String>>,
}

impl Floor {
    /// One client connection, keep-alive: a request head, an answer, and so on.
    async fn connection(&self, mut stream: TcpStream) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(1024);
        loop {
            let end = loop {
                if let Some(i) = find(&buf, b"\r\n\r\n") {
                    break i + 4;
                }
                let mut chunk = [0u8; 1024];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(());
                }
                buf.extend_from_slice(&chunk[..n]);
            };
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end);
            let path = head.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = match path
                .strip_prefix("/probe?target=pbx-")
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n < self.targets.len())
            {
                Some(n) => match self.probe(n).await {
                    Ok(text) => ("200 OK", text),
                    Err(e) => ("200 OK", format!("yeastar_up 0\n# {e}\n")),
                },
                None if path == "/-/ready" => ("200 OK", "ready\n".to_string()),
                None => ("404 Not Found", String::new()),
            };
            let answer = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(answer.as_bytes()).await?;
        }
    }

    /// The six exchanges of one probe and its text.
    async fn probe(&self, n: usize) -> Result<String, String> {
        let addr = &self.targets[n];
        let known = self.tokens.borrow().get(&n).cloned();
        let token = if let Some(t) = known {
            t
        } else {
            let body = format!(
                r#"{{"username":"api","password":"{}","version":"2.0.0"}}"#,
                self.password_md5
            );
            let answer = exchange(addr, "login", None, &body).await?;
            let t = answer["token"]
                .as_str()
                .ok_or("login without token")?
                .to_string();
            self.tokens.borrow_mut().insert(n, t.clone());
            t
        };
        let t = Some(token.as_str());
        let inbound = exchange(addr, "call/query", t, r#"{"type":"inbound"}"#).await?;
        let outbound = exchange(addr, "call/query", t, r#"{"type":"outbound"}"#).await?;
        let internal = exchange(addr, "extension/query_call", t, r#"{"number":"all"}"#).await?;
        let trunks = exchange(addr, "trunk/list", t, "{}").await?;
        let extensions = exchange(addr, "extension/list", t, "{}").await?;
        let device = exchange(addr, "deviceinfo/query", t, "{}").await?;

        // Calls merged by callid; members by (kind, status); trunk legs.
        let mut calls: HashSet<String> = HashSet::new();
        let mut members: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut legs: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
        let lists = [&inbound["calls"], &outbound["calls"]];
        let mut add = |call: &Value| {
            let id = call["callid"].as_str().unwrap_or_default().to_string();
            if !calls.insert(id) {
                return;
            }
            for m in call["members"].as_array().into_iter().flatten() {
                if let Some((kind, info)) = m.as_object().and_then(|o| o.iter().next()) {
                    let status = info["memberstatus"].as_str().unwrap_or("OTHER").to_string();
                    *members.entry((kind.clone(), status)).or_default() += 1;
                    if let Some(trunk) = info["trunkname"].as_str() {
                        let dir = if kind == "inbound" {
                            "inbound"
                        } else {
                            "outbound"
                        };
                        *legs.entry((trunk.to_string(), dir)).or_default() += 1;
                    }
                }
            }
        };
        for list in lists {
            for call in list.as_array().into_iter().flatten() {
                add(call);
            }
        }
        for ext in internal["calllist"].as_array().into_iter().flatten() {
            for call in ext["numbercalls"].as_array().into_iter().flatten() {
                add(call);
            }
        }
        let mut text = String::with_capacity(8 << 10);
        text.push_str("# TYPE yeastar_up gauge\nyeastar_up 1\n");
        let _ = writeln!(text, "yeastar_active_calls {}", calls.len());
        for ((kind, status), v) in &members {
            let _ = writeln!(
                text,
                "yeastar_call_members{{member=\"{kind}\",status=\"{status}\"}} {v}"
            );
        }
        for ((trunk, dir), v) in &legs {
            let _ = writeln!(
                text,
                "yeastar_trunk_active_calls{{trunk=\"{trunk}\",direction=\"{dir}\"}} {v}"
            );
        }
        for t in trunks["trunklist"].as_array().into_iter().flatten() {
            let _ = writeln!(
                text,
                "yeastar_trunk_up{{trunk=\"{}\",type=\"{}\",status=\"{}\"}} 1",
                t["trunkname"].as_str().unwrap_or_default(),
                t["type"].as_str().unwrap_or_default(),
                t["status"].as_str().unwrap_or_default()
            );
        }
        let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
        for e in extensions["extlist"].as_array().into_iter().flatten() {
            let s = e["status"].as_str().unwrap_or("other").to_ascii_lowercase();
            *by_status.entry(s).or_default() += 1;
        }
        for (s, v) in &by_status {
            let _ = writeln!(text, "yeastar_extensions{{status=\"{s}\"}} {v}");
        }
        let d = &device["deviceinfo"];
        let _ = writeln!(
            text,
            "yeastar_device_info{{model=\"{}\",firmware=\"{}\"}} 1",
            d["devicename"].as_str().unwrap_or_default(),
            d["firmwarever"].as_str().unwrap_or_default()
        );
        Ok(text)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One POST over a new connection; the answer's JSON.
async fn exchange(
    addr: &str,
    endpoint: &str,
    token: Option<&str>,
    body: &str,
) -> Result<Value, String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let query = token.map(|t| format!("?token={t}")).unwrap_or_default();
    let req = format!(
        "POST {API}/{endpoint}{query} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::with_capacity(16 << 10);
    s.read_to_end(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    let end = find(&answer, b"\r\n\r\n").ok_or("no head")? + 4;
    let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(&answer[end..])?
    } else {
        answer[end..].to_vec()
    };
    serde_json::from_slice(&body).map_err(|e| format!("{endpoint}: {e}"))
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(rest.len());
    loop {
        let line = find(rest, b"\r\n").ok_or("bad chunk")?;
        let size = usize::from_str_radix(
            std::str::from_utf8(&rest[..line])
                .map_err(|e| e.to_string())?
                .trim(),
            16,
        )
        .map_err(|e| e.to_string())?;
        rest = &rest[line + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}
