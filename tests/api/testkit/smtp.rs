//! A real SMTP server on loopback that keeps what it receives: the tests' mail sink. It speaks
//! the protocol (RFC 5321: EHLO/HELO, MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT),
//! can be stopped to play an outage and started again on the same port.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent after DATA, dot-unstuffed, CRLF line ends.
    pub data: String,
}

impl ReceivedMail {
    /// The decoded body of the MIME part with this content type (e.g. "text/plain").
    pub fn part(&self, content_type: &str) -> String {
        let boundary = self
            .data
            .split("boundary=")
            .nth(1)
            .map(|rest| {
                rest.trim_start_matches('"')
                    .split(['"', '\r', '\n', ';'])
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .expect("a multipart message");
        for part in self.data.split(&format!("--{boundary}")) {
            let Some((headers, body)) = part.split_once("\r\n\r\n") else {
                continue;
            };
            let headers_lower = headers.to_ascii_lowercase();
            if !headers_lower.contains(&format!("content-type: {content_type}")) {
                continue;
            }
            return if headers_lower.contains("content-transfer-encoding: quoted-printable") {
                decode_quoted_printable(body)
            } else if headers_lower.contains("content-transfer-encoding: base64") {
                let joined: String = body.split_whitespace().collect();
                String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(joined)
                        .expect("base64 body"),
                )
                .expect("utf-8 body")
            } else {
                body.to_string()
            };
        }
        panic!("no {content_type} part in {}", self.data);
    }

    /// The link in the plain-text body that goes to `path` (with its token).
    pub fn link(&self, path: &str) -> String {
        let text = self.part("text/plain");
        let start = text
            .find(&format!("{path}?token="))
            .unwrap_or_else(|| panic!("no {path} link in {text}"));
        let begin = text[..start].rfind("http").expect("an absolute link");
        let end = text[start..]
            .find(|c: char| c.is_whitespace())
            .map_or(text.len(), |i| start + i);
        text[begin..end].to_string()
    }
}

fn decode_quoted_printable(body: &str) -> String {
    let joined = body.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(hex) = joined.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("utf-8 body")
}

/// How the sink speaks TLS.
#[derive(Clone)]
pub enum SinkTls {
    None,
    /// Offers STARTTLS after EHLO.
    Starttls(TlsAcceptor),
    /// TLS from the first byte (port 465 style).
    Implicit(TlsAcceptor),
}

/// A private CA and a certificate it signed for 127.0.0.1: what a test's SMTP server presents
/// and what Tessera is told to trust (`smtp.ca_file`).
pub struct TestCertificates {
    pub ca_pem: String,
    pub acceptor: TlsAcceptor,
}

impl TestCertificates {
    pub fn new() -> TestCertificates {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Tessera test CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .expect("leaf params")
            .signed_by(&leaf_key, &ca, &ca_key)
            .expect("leaf certificate");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .expect("server config");
        TestCertificates {
            ca_pem: ca.pem(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        }
    }
}

pub struct SmtpSink {
    pub port: u16,
    mails: Arc<Mutex<Vec<ReceivedMail>>>,
    arrived: Arc<Notify>,
    server: JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        SmtpSink::start_on(0).await
    }

    pub async fn start_on(port: u16) -> SmtpSink {
        SmtpSink::start_with(port, SinkTls::None).await
    }

    /// Listens on `port` (0: any free one); SO_REUSEADDR so a restart can take it back.
    pub async fn start_with(port: u16, tls: SinkTls) -> SmtpSink {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("reuseaddr");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .expect("bind the SMTP sink");
        let listener = socket.listen(64).expect("listen");
        let port = listener.local_addr().expect("addr").port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Notify::new());
        let server = {
            let (mails, arrived) = (mails.clone(), arrived.clone());
            tokio::spawn(async move {
                // Sessions end with the server: a stopped sink answers nothing at all.
                struct AbortAll(Vec<JoinHandle<()>>);
                impl Drop for AbortAll {
                    fn drop(&mut self) {
                        self.0.iter().for_each(JoinHandle::abort);
                    }
                }
                let mut guard = AbortAll(Vec::new());
                while let Ok((stream, _)) = listener.accept().await {
                    let (mails, arrived, tls) = (mails.clone(), arrived.clone(), tls.clone());
                    let session = tokio::spawn(async move {
                        let _ = serve(stream, tls, &mails, &arrived).await;
                    });
                    guard.0.push(session);
                }
            })
        };
        SmtpSink {
            port,
            mails,
            arrived,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Stops listening (connections are refused from now on); returns the port.
    pub async fn stop(self) -> u16 {
        self.server.abort();
        super::eventually(super::DEADLINE, "the aborted SMTP sink to stop", || async {
            self.server.is_finished()
        })
        .await;
        self.port
    }

    pub fn mails(&self) -> Vec<ReceivedMail> {
        self.mails.lock().expect("mails").clone()
    }

    /// Waits until at least `count` mails have arrived (at most 15 s).
    pub async fn wait_for(&self, count: usize) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let arrived = self.arrived.notified();
            let mails = self.mails();
            if mails.len() >= count {
                return mails;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("expected {count} mail(s), got {}", self.mails().len());
            }
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn serve(
    stream: TcpStream,
    tls: SinkTls,
    mails: &Mutex<Vec<ReceivedMail>>,
    arrived: &Notify,
) -> std::io::Result<()> {
    let (stream, mut starttls): (Box<dyn Io>, Option<TlsAcceptor>) = match tls {
        SinkTls::None => (Box::new(stream), None),
        SinkTls::Starttls(acceptor) => (Box::new(stream), Some(acceptor)),
        SinkTls::Implicit(acceptor) => (Box::new(acceptor.accept(stream).await?), None),
    };
    let mut conn = BufReader::new(stream);
    conn.write_all(b"220 sink.test ESMTP ready\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_string();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" if starttls.is_some() => {
                b"250-sink.test greets you\r\n250-8BITMIME\r\n250 STARTTLS\r\n"
            }
            "EHLO" => b"250-sink.test greets you\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n",
            "HELO" => b"250 sink.test\r\n",
            "STARTTLS" => match starttls.take() {
                Some(acceptor) => {
                    conn.write_all(b"220 go ahead\r\n").await?;
                    conn.flush().await?;
                    // RFC 3207 §4.2: everything said before the handshake is forgotten.
                    let plain = conn.into_inner();
                    conn = BufReader::new(Box::new(acceptor.accept(plain).await?));
                    from.clear();
                    to.clear();
                    continue;
                }
                None => b"503 TLS already active or not offered\r\n",
            },
            "MAIL" => {
                from = address(&command);
                to.clear();
                b"250 OK\r\n"
            }
            "RCPT" if from.is_empty() => b"503 MAIL first\r\n",
            "RCPT" => {
                to.push(address(&command));
                b"250 OK\r\n"
            }
            "DATA" if to.is_empty() => b"503 RCPT first\r\n",
            "DATA" => {
                conn.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if conn.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    // RFC 5321 §4.5.2: a leading dot was doubled by the sender.
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                mails.lock().expect("mails").push(ReceivedMail {
                    from: std::mem::take(&mut from),
                    to: std::mem::take(&mut to),
                    data,
                });
                arrived.notify_waiters();
                b"250 OK queued\r\n"
            }
            "RSET" => {
                from.clear();
                to.clear();
                b"250 OK\r\n"
            }
            "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                conn.write_all(b"221 bye\r\n").await?;
                conn.flush().await?;
                return Ok(());
            }
            _ => b"502 command not implemented\r\n",
        };
        conn.write_all(reply).await?;
        conn.flush().await?;
    }
}

fn address(command: &str) -> String {
    command
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(addr, _)| addr.to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_sink_speaks_smtp_and_unstuffs_dots() {
    let sink = SmtpSink::start().await;
    let stream = TcpStream::connect(("127.0.0.1", sink.port))
        .await
        .expect("connect");
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut reply = String::new();
    for command in [
        "",
        "EHLO me\r\n",
        "MAIL FROM:<a@x.test>\r\n",
        "RCPT TO:<b@x.test>\r\n",
        "DATA\r\n",
        "Subject: hi\r\n\r\n..leading dot\r\n.\r\n",
        "QUIT\r\n",
    ] {
        write.write_all(command.as_bytes()).await.expect("write");
        loop {
            reply.clear();
            lines.read_line(&mut reply).await.expect("read");
            if reply.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        assert!(reply.starts_with(['2', '3']), "{command:?} → {reply}");
    }
    let mails = sink.wait_for(1).await;
    assert_eq!(mails[0].from, "a@x.test");
    assert_eq!(mails[0].to, ["b@x.test"]);
    assert!(mails[0].data.contains("\r\n.leading dot\r\n"));
    let port = sink.stop().await;
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
}
