//! SIP over WebSocket (RFC 7118) for browser phones (JsSIP, SIP.js): `ws:` listeners on
//! TCP, `wss:` listeners on TLS (the certificate of the `tls:` listeners).
//!
//! An accepted connection counts against the TCP limits at once; a `wss:` one first
//! completes its TLS handshake (as a `tls:` one does). Then the HTTP upgrade
//! ([`upgrade`]) must be complete within
//! [`TransportConfig::ws_upgrade_timeout`](crate::TransportConfig::ws_upgrade_timeout)
//! (slowloris): a request that is not a WebSocket upgrade for the `sip` subprotocol gets
//! an HTTP error and the connection closes. After `101 Switching Protocols` the
//! WebSocket framing is tokio-tungstenite's, and [`connection`] carries one SIP message
//! per WebSocket message ([`payload`]): what arrives becomes a [`Received`] on the flow
//! of the connection (transport `WS`/`WSS`), what is sent on that flow goes out as one
//! text frame per message. A message larger than the framing limit closes the
//! connection with 1009; a message that is not SIP is dropped and counted. mss pings a
//! quiet browser and closes a connection from which nothing, not even a pong, came for
//! the idle timeout.
//!
//! Like TLS, mss opens no WebSocket connection itself: a browser is reached over the
//! connection it registered on, or not at all (`NoConnection`).
//!
//! [`Received`]: crate::Received

pub(crate) mod accept;
pub(crate) mod connection;
pub(crate) mod payload;
pub(crate) mod upgrade;
