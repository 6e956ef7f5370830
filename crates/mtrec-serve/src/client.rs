//! A keep-alive HTTP/1.1 client for one server on this machine: what the load test and the
//! tests drive the server with. One [`Client`] is one connection, reopened when the server
//! closes it (as it may after refusing a request).

use std::io;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::{Method, Request, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{SendRequest, handshake};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A status and a body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> io::Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            io::Error::other(format!(
                "{e}: {}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
            ))
        })
    }
}

pub struct Client {
    addr: SocketAddr,
    conn: Option<SendRequest<Full<Bytes>>>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr, conn: None }
    }

    pub async fn get(&mut self, path: &str) -> io::Result<Answer> {
        self.request(Method::GET, path, Bytes::new()).await
    }

    pub async fn post(&mut self, path: &str, body: impl Into<Bytes>) -> io::Result<Answer> {
        self.request(Method::POST, path, body.into()).await
    }

    /// Sends one request on the open connection (or a new one) and reads the whole answer.
    pub async fn request(&mut self, method: Method, path: &str, body: Bytes) -> io::Result<Answer> {
        let mut conn = match self.conn.take() {
            Some(mut c) => match c.ready().await {
                Ok(()) => c,
                Err(_) => self.connect().await?,
            },
            None => self.connect().await?,
        };
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.addr.to_string())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(io::Error::other)?;
        let response = conn.send_request(request).await.map_err(io::Error::other)?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(io::Error::other)?
            .to_bytes();
        self.conn = Some(conn);
        Ok(Answer { status, body })
    }

    async fn connect(&self) -> io::Result<SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = handshake(TokioIo::new(stream))
            .await
            .map_err(io::Error::other)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}
