//! Event reports to the exporter: where a login or heartbeat asked for them ([`EventReceiver`]),
//! HTTP POSTs to it, one connection each, resent until a 200, the TCP event port (TCP report
//! mode), and what became of them ([`EventDelivery`], [`DeliveryFailure`]).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;

use super::{Simulator, lock, model};

/// Where a login or heartbeat asked the PBX to send its HTTP event reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventReceiver {
    /// The host to connect to: the caller's address, the heartbeat's `ipaddr`, or the absolute
    /// URL's host.
    pub host: String,
    pub port: u16,
    /// The request path (`/` + a relative `url`, or the absolute URL's path).
    pub path: String,
    /// The login said `"version": "2.0.0"` (else reports come in the v1 format).
    pub v2: bool,
}

impl EventReceiver {
    /// From a login or heartbeat `body` sent by `peer`; `None` when it registers nothing.
    pub(super) fn of(body: &Value, peer: IpAddr) -> Option<Self> {
        let field = |k: &str| match body.get(k)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let port: u16 = field("port")?.parse().ok()?;
        let url = field("url").unwrap_or_default();
        let v2 = field("version").is_some_and(|v| v.starts_with('2'));
        let host = field("ipaddr").unwrap_or_else(|| peer.to_string());
        if field("urltag").as_deref() == Some("1") {
            // host:port/path, no scheme.
            let (hostport, path) = url.split_once('/').unwrap_or((url.as_str(), ""));
            let (h, p) = hostport.rsplit_once(':')?;
            return Some(Self {
                host: h.to_string(),
                port: p.parse().ok()?,
                path: format!("/{path}"),
                v2,
            });
        }
        Some(Self {
            host,
            port,
            path: format!("/{}", url.trim_start_matches('/')),
            v2,
        })
    }
}

/// What the simulator did with its event reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventDelivery {
    /// Reports the receiver answered 200.
    pub delivered: u64,
    /// Deliveries that failed (no connection, no 200): the report stays queued and is resent.
    pub failed: u64,
    /// Why the last failed delivery failed, if one did.
    pub last_failure: Option<DeliveryFailure>,
    /// Reports sent again after a 200 (the `event_resend_rate` fault).
    pub resent: u64,
    /// Reports discarded because no receiver was registered.
    pub unregistered: u64,
    /// TCP event logins: accepted, refused.
    pub tcp_logins: [u64; 2],
    /// Reports written to TCP event clients.
    pub tcp_delivered: u64,
}

/// Why a report got no 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryFailure {
    /// No connection to the receiver (refused, unreachable, no socket).
    Connect,
    /// The request could not be written whole.
    Write,
    /// The connection ended in an error (reset) before the answer was read.
    Reset,
    /// An answer that was not `200` (empty: closed without one).
    Status,
    /// No answer within the simulator's 5 s.
    Timeout,
}

impl Simulator {
    /// Serves the TCP event port (TCP report mode) on `addr`: a client sends the login block
    /// (`Action: login`, `Username:`, `Secret:` with the password in clear, `Version:`, a blank
    /// line); a wrong one is answered `Response: Error` and closed, and counts toward the same
    /// lockout as API logins; a right one is answered `Response: Success` and gets every report
    /// from then on, objects separated by nothing, CRLF or a blank line in turn.
    pub async fn start_tcp_events(self: &Arc<Self>, addr: &str) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let sim = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    continue;
                };
                let sim = sim.clone();
                tokio::spawn(async move { sim.tcp_login(stream, peer.ip()).await });
            }
        });
        Ok(local)
    }

    async fn tcp_login(&self, stream: tokio::net::TcpStream, peer: IpAddr) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut read, mut write) = stream.into_split();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        let head = loop {
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some(i) = text.find("\r\n\r\n").or_else(|| text.find("\n\n")) {
                break text[..i].to_string();
            }
            if buf.len() > 4096 {
                return;
            }
            match tokio::time::timeout(Duration::from_secs(10), read.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        };
        let field = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let ok = self.tcp_login_accepted(
            peer,
            field("Action").as_deref(),
            field("Username").as_deref(),
            field("Secret").as_deref(),
        );
        lock(&self.delivery).tcp_logins[usize::from(!ok)] += 1;
        if !ok {
            let _ = write
                .write_all(b"Response: Error\r\nMessage: Authentication failed\r\n\r\n")
                .await;
            return;
        }
        if write.write_all(b"Response: Success\r\n\r\n").await.is_ok() {
            self.with_model(|m| m.events_on = true);
            self.tcp_clients.lock().await.push(write);
        }
        // The client's further bytes (none are documented) are read and dropped until it closes.
        while let Ok(n) = read.read(&mut chunk).await {
            if n == 0 {
                break;
            }
        }
    }

    /// Closes every TCP event connection (a network cut or a PBX restart, for tests).
    pub async fn cut_tcp_events(&self) {
        use tokio::io::AsyncWriteExt;
        for mut w in self.tcp_clients.lock().await.drain(..) {
            let _ = w.shutdown().await;
        }
    }

    /// Writes every pending report to every TCP client, objects separated by nothing, CRLF or a
    /// blank line in turn; a client whose write fails is dropped and the reports stay pending.
    async fn write_tcp(
        &self,
        clients: &mut Vec<tokio::net::tcp::OwnedWriteHalf>,
        pending: &mut VecDeque<Value>,
    ) -> u64 {
        use tokio::io::AsyncWriteExt;
        let mut batch = Vec::new();
        let base = lock(&self.delivery).tcp_delivered;
        for (i, event) in pending.iter().enumerate() {
            batch.extend_from_slice(event.to_string().as_bytes());
            batch.extend_from_slice(match (base + i as u64) % 3 {
                0 => &b""[..],
                1 => b"\r\n",
                _ => b"\r\n\r\n",
            });
        }
        let mut written = false;
        let mut kept = Vec::new();
        for mut w in clients.drain(..) {
            if w.write_all(&batch).await.is_ok() && w.flush().await.is_ok() {
                written = true;
                kept.push(w);
            }
        }
        *clients = kept;
        if !written {
            return 0;
        }
        let n = pending.len() as u64;
        pending.clear();
        lock(&self.delivery).tcp_delivered += n;
        n
    }

    /// Sends event reports to `r` from now on, and has the model make them.
    pub(super) fn register_receiver(&self, r: EventReceiver) {
        *lock(&self.receiver) = Some(r);
        self.with_model(|m| m.events_on = true);
    }

    /// Starts sending event reports as the PBX's go: soon after they happen, resent until a 200;
    /// until the returned guard is dropped.
    pub(super) fn spawn_pump(self: &Arc<Self>) -> AbortOnDrop {
        let sim = self.clone();
        AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let tcp = sim.tcp_clients.try_lock().is_ok_and(|c| !c.is_empty());
                if tcp || sim.event_receiver().is_some() {
                    sim.pump_events().await;
                }
            }
        }))
    }

    /// Where event reports go now, if anywhere.
    pub fn event_receiver(&self) -> Option<EventReceiver> {
        lock(&self.receiver).clone()
    }

    /// What happened to the event reports so far.
    pub fn event_delivery(&self) -> EventDelivery {
        *lock(&self.delivery)
    }

    /// Brings the model to the clock's time and sends every report it has made since to the
    /// registered receiver, in order, one connection each (as the PBX does), until one is not
    /// answered 200: that one and the rest stay queued for the next call. Returns how many were
    /// answered 200.
    pub async fn pump_events(&self) -> u64 {
        let mut pending = self.pending.lock().await;
        {
            let mut model = lock(&self.model);
            model.advance(self.clock.now_millis() / 1000);
            pending.extend(model.outbox.drain(..));
        }
        while pending.len() > model::MAX_OUTBOX {
            pending.pop_front();
        }
        {
            let mut clients = self.tcp_clients.lock().await;
            if !clients.is_empty() {
                return self.write_tcp(&mut clients, &mut pending).await;
            }
        }
        let Some(receiver) = self.event_receiver() else {
            lock(&self.delivery).unregistered += pending.len() as u64;
            pending.clear();
            return 0;
        };
        let mut sent = 0;
        let mut resent_front = false;
        while let Some(event) = pending.front() {
            let body = if receiver.v2 && !lock(&self.cfg).faults.event_v1 {
                event.to_string()
            } else {
                v1_report(event).to_string()
            };
            let shape = (lock(&self.delivery).delivered + sent) % 2;
            let from = *lock(&self.own_ip);
            if let Err(why) = post_report(&receiver, from, &body, shape == 0).await {
                let mut d = lock(&self.delivery);
                d.failed += 1;
                d.last_failure = Some(why);
                break;
            }
            sent += 1;
            let rate = lock(&self.cfg).faults.event_resend_rate;
            if !resent_front && rate > 0.0 && self.roll(rate) {
                // The 200 "never arrived": the report goes again, once.
                lock(&self.delivery).resent += 1;
                resent_front = true;
                continue;
            }
            resent_front = false;
            pending.pop_front();
        }
        lock(&self.delivery).delivered += sent;
        sent
    }
}

/// A v2 report in the v1 format (a login without `version`): `action` for `event`, no `sn`.
fn v1_report(event: &Value) -> Value {
    let mut v = event.clone();
    if let Some(o) = v.as_object_mut() {
        if let Some(name) = o.remove("event") {
            o.insert("action".into(), name);
        }
        o.remove("sn");
    }
    v
}

/// POSTs one report to `r` over a new connection and reads the answer to the close: true for a
/// 200. `documented`: the request exactly as the vendor's pages show it (`Host` with a space
/// before the port, `Accept` twice, no `Content-Length`); else with `Content-Length`,
/// `Connection: close` and a well-formed `Host`.
async fn post_report(
    r: &EventReceiver,
    from: Option<IpAddr>,
    body: &str,
    documented: bool,
) -> Result<(), DeliveryFailure> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut s = connect_from(from, &r.host, r.port)
            .await
            .ok_or(DeliveryFailure::Connect)?;
        let head = if documented {
            format!(
                "POST {} HTTP/1.1\r\nHost: {}: {}\r\nAccept: application/json\r\nUser-Agent: WebAPI\r\nContent-Type: application/json\r\nAccept: application/json\r\n\r\n",
                r.path, r.host, r.port
            )
        } else {
            format!(
                "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length:{}\r\nConnection:close\r\n\r\n",
                r.path,
                r.host,
                r.port,
                body.len()
            )
        };
        s.write_all(head.as_bytes())
            .await
            .map_err(|_| DeliveryFailure::Write)?;
        s.write_all(body.as_bytes())
            .await
            .map_err(|_| DeliveryFailure::Write)?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer)
            .await
            .map_err(|_| DeliveryFailure::Reset)?;
        if answer.starts_with(b"HTTP/1.1 200") {
            Ok(())
        } else {
            Err(DeliveryFailure::Status)
        }
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .unwrap_or(Err(DeliveryFailure::Timeout))
}

/// A connection to `host:port` leaving from `from` when given (and of the same family), as a
/// PBX's reports leave from its own address.
async fn connect_from(
    from: Option<IpAddr>,
    host: &str,
    port: u16,
) -> Option<tokio::net::TcpStream> {
    let to = tokio::net::lookup_host((host, port)).await.ok()?.next()?;
    match from {
        Some(ip) if ip.is_ipv4() == to.is_ipv4() => {
            let socket = if ip.is_ipv4() {
                tokio::net::TcpSocket::new_v4()
            } else {
                tokio::net::TcpSocket::new_v6()
            }
            .ok()?;
            socket.bind(SocketAddr::new(ip, 0)).ok()?;
            socket.connect(to).await.ok()
        }
        _ => tokio::net::TcpStream::connect(to).await.ok(),
    }
}

/// Aborts a task when dropped (the simulator's event pump ends with its server).
pub(super) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod event_tests {
    use super::*;
    use crate::pbx::s_series::events;
    use serde_json::json;

    #[test]
    fn a_login_without_version_gets_v1_reports() {
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        let v2 = EventReceiver::of(
            &json!({"username": "api", "port": "8260", "url": "events/hq", "version": "2.0.0"}),
            peer,
        )
        .unwrap();
        assert_eq!(
            v2,
            EventReceiver {
                host: "10.0.0.9".into(),
                port: 8260,
                path: "/events/hq".into(),
                v2: true
            }
        );
        // A heartbeat's number port and ipaddr; an absolute URL.
        let hb = EventReceiver::of(&json!({"ipaddr": "10.0.0.7", "port": 8261}), peer).unwrap();
        assert_eq!(
            (hb.host.as_str(), hb.port, hb.path.as_str(), hb.v2),
            ("10.0.0.7", 8261, "/", false)
        );
        let abs = EventReceiver::of(
            &json!({"port": "8260", "url": "203.0.113.5:9000/events/hq", "urltag": "1", "version": "2.0.0"}),
            peer,
        )
        .unwrap();
        assert_eq!(
            (abs.host.as_str(), abs.port, abs.path.as_str()),
            ("203.0.113.5", 9000, "/events/hq")
        );
        // No port: nothing registered (a login for polling only).
        assert_eq!(EventReceiver::of(&json!({"username": "api"}), peer), None);
        // The v1 form of a report: `action`, no `sn`, and the exporter reads it as v1.
        let v1 = v1_report(
            &json!({"event": "NewCdr", "callid": "1.1", "status": "ANSWERED", "type": "Inbound", "sn": "1"}),
        );
        let read = events::parse(v1.to_string().as_bytes()).unwrap();
        assert_eq!((read.legacy, read.sn), (true, None));
        assert_eq!(
            read.event.kind(),
            Some(crate::pbx::model::reports::Kind::NewCdr)
        );
    }
}
