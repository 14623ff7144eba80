//! `confab-client`: what `@stream-io/video-client` is to a web app, for Confab.
//!
//! This crate owns users, tokens and the connection to a Stream-compatible coordinator. It
//! builds and tests without a display, WebKit or Tauri.
//!
//! Each example below runs as a test against a local coordinator (the hidden lines start one
//! and mint tokens as a customer's server would). Against Stream's service, leave out
//! `with_base_url`.
//!
//! # Automatic connection
//! A client built with a user starts connecting at once; watch its state.
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! # let coordinator = confab_coordinator::start(Default::default()).await.unwrap();
//! # let (api_key, base_url) = (coordinator.api_key().to_owned(), coordinator.base_url().to_owned());
//! # let token = coordinator.mint_token("alice", None);
//! use confab_client::{ClientOptions, ConnectionState, TokenSource, User, VideoClient};
//!
//! let user = User::new("alice").with_name("Alice");
//! let options = ClientOptions::default().with_base_url(base_url);
//! let client = VideoClient::with_user(api_key, user, TokenSource::token(token), options);
//! let mut state = client.state();
//! state.wait_for(|s| matches!(s, ConnectionState::Connected { .. })).await.unwrap();
//! # }
//! ```
//!
//! # Manual connection, with error handling
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! # let coordinator = confab_coordinator::start(Default::default()).await.unwrap();
//! # let (api_key, base_url) = (coordinator.api_key().to_owned(), coordinator.base_url().to_owned());
//! # let token = coordinator.mint_token("alice", None);
//! use confab_client::{ClientOptions, TokenSource, User, VideoClient};
//!
//! let options = ClientOptions::default()
//!     .with_base_url(base_url)
//!     .with_max_connect_user_retries(3)
//!     .on_connect_user_error(|last, all| eprintln!("gave up after {} attempts: {last}", all.len()));
//! let client = VideoClient::new(api_key, options);
//! match client.connect_user(User::new("alice"), TokenSource::token(token)).await {
//!     Ok(me) => println!("connected as {}", me.id),
//!     Err(e) => eprintln!("could not connect (code {:?}): {e}", e.code()),
//! }
//! # assert_eq!(client.user_id().as_deref(), Some("alice"));
//! # }
//! ```
//!
//! # Guest users
//! The coordinator creates the guest and hands back its token.
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! # let coordinator = confab_coordinator::start(Default::default()).await.unwrap();
//! # let (api_key, base_url) = (coordinator.api_key().to_owned(), coordinator.base_url().to_owned());
//! use confab_client::{ClientOptions, Guest, VideoClient};
//!
//! let client = VideoClient::new(api_key, ClientOptions::default().with_base_url(base_url));
//! let guest = Guest { id: Some("jack-guest".into()), name: Some("Jack".into()), ..Guest::default() };
//! let me = client.connect_guest(guest).await.unwrap();
//! assert_eq!(me.role, "guest");
//! # }
//! ```
//!
//! # Anonymous users
//! No socket and no events: REST only, enough to watch a livestream.
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! # let coordinator = confab_coordinator::start(Default::default()).await.unwrap();
//! # let (api_key, base_url) = (coordinator.api_key().to_owned(), coordinator.base_url().to_owned());
//! # let host = confab_client::VideoClient::new(api_key.clone(), confab_client::ClientOptions::default().with_base_url(base_url.clone()));
//! # host.connect_user(confab_client::User::new("host"), confab_client::TokenSource::token(coordinator.mint_token("host", None))).await.unwrap();
//! # host.call("livestream", "launch").get_or_create(None).await.unwrap();
//! use confab_client::{ClientOptions, VideoClient};
//!
//! let viewer = VideoClient::new(api_key, ClientOptions::default().with_base_url(base_url));
//! viewer.connect_anonymous(None).await.unwrap();
//! let call = viewer.call("livestream", "launch").get().await.unwrap();
//! println!("backstage: {}, playlist: {:?}", call.backstage(), call.hls_playlist_url());
//! # }
//! ```
//!
//! # Anonymous users with a call token
//! A token whose `call_cids` names the calls it may watch; the coordinator refuses others.
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! # let coordinator = confab_coordinator::start(Default::default()).await.unwrap();
//! # let (api_key, base_url) = (coordinator.api_key().to_owned(), coordinator.base_url().to_owned());
//! # let host = confab_client::VideoClient::new(api_key.clone(), confab_client::ClientOptions::default().with_base_url(base_url.clone()));
//! # host.connect_user(confab_client::User::new("host"), confab_client::TokenSource::token(coordinator.mint_token("host", None))).await.unwrap();
//! # host.call("default", "town-hall").get_or_create(None).await.unwrap();
//! # let call_token = coordinator.sign(&confab_coordinator::Claims { user_id: Some("!anon".into()), role: Some("viewer".into()), call_cids: Some(vec!["default:town-hall".into()]), ..Default::default() });
//! use confab_client::{ClientOptions, TokenSource, VideoClient};
//!
//! let viewer = VideoClient::new(api_key, ClientOptions::default().with_base_url(base_url));
//! viewer.connect_anonymous(Some(TokenSource::token(call_token))).await.unwrap();
//! viewer.call("default", "town-hall").get().await.unwrap();
//! let refused = viewer.call("default", "board-meeting").get().await.unwrap_err();
//! assert!(refused.code().is_some());
//! # }
//! ```
//!
//! # Token provider
//! Called at connect and whenever the token expires (ahead of `exp`, once for any number of
//! requests that find it expired).
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! # let coordinator = confab_coordinator::start(Default::default()).await.unwrap();
//! # let (api_key, base_url) = (coordinator.api_key().to_owned(), coordinator.base_url().to_owned());
//! # let key = coordinator.signing_key();
//! # let fetch_token_from_your_server = move |user: &str| { let t = key.sign(&confab_coordinator::Claims { user_id: Some(user.into()), ..Default::default() }); async move { Ok::<_, String>(t) } };
//! use confab_client::{ClientOptions, ProviderError, TokenSource, User, VideoClient};
//!
//! let provider = TokenSource::provider(move || {
//!     let request = fetch_token_from_your_server("alice");
//!     async move { request.await.map_err(ProviderError::new) }
//! });
//! let client = VideoClient::new(api_key, ClientOptions::default().with_base_url(base_url));
//! client.connect_user(User::new("alice"), provider).await.unwrap();
//! # }
//! ```
//!
//! # Token and provider
//! The static token is used first; the provider only for refreshes.
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! # let coordinator = confab_coordinator::start(Default::default()).await.unwrap();
//! # let (api_key, base_url) = (coordinator.api_key().to_owned(), coordinator.base_url().to_owned());
//! # let token = coordinator.mint_token("alice", Some(std::time::Duration::from_secs(3600)));
//! # let key = coordinator.signing_key();
//! # let fetch_token_from_your_server = move |user: &str| { let t = key.sign(&confab_coordinator::Claims { user_id: Some(user.into()), ..Default::default() }); async move { Ok::<_, String>(t) } };
//! use confab_client::{ClientOptions, ProviderError, TokenSource, User, VideoClient};
//!
//! let source = TokenSource::token(token).with_provider(move || {
//!     let request = fetch_token_from_your_server("alice");
//!     async move { request.await.map_err(ProviderError::new) }
//! });
//! let client = VideoClient::new(api_key, ClientOptions::default().with_base_url(base_url));
//! client.connect_user(User::new("alice"), source).await.unwrap();
//! assert_eq!(client.token_manager().unwrap().provider_calls(), 0);
//! # }
//! ```
//!
//! # Disconnecting
//! Closes the socket with 1000 and forgets the user, their token and provider.
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! # let coordinator = confab_coordinator::start(Default::default()).await.unwrap();
//! # let (api_key, base_url) = (coordinator.api_key().to_owned(), coordinator.base_url().to_owned());
//! # let token = coordinator.mint_token("alice", None);
//! use confab_client::{ClientOptions, TokenSource, User, VideoClient};
//!
//! let client = VideoClient::new(api_key, ClientOptions::default().with_base_url(base_url));
//! client.connect_user(User::new("alice"), TokenSource::token(token)).await.unwrap();
//! client.disconnect_user().await;
//! assert!(client.user_id().is_none());
//! # }
//! ```

pub mod backoff;
pub mod call;
pub mod client;
pub mod connection;
pub mod events;
pub mod media;
pub mod rest;
pub mod roster;
pub mod secure_transport;
pub mod token;
pub mod token_manager;
pub mod token_url;
pub mod user;

pub use backoff::ReconnectPolicy;
pub use call::{Call, CallResponse, JoinWithMediaError};
pub use client::{ClientOptions, VideoClient, DEFAULT_BASE_URL};
pub use connection::{ConnectError, ConnectionOptions, ConnectionState, DisconnectReason};
pub use events::Event;
pub use rest::ApiError;
pub use roster::{Roster, RosterEntry};
pub use token::{ReadClaims, Token, TokenClaims, TokenError};
pub use token_manager::{ProviderError, TokenLoadError, TokenManager, TokenOptions, TokenSource};
pub use token_url::{token_url_provider, TokenUrlError};
pub use user::{ConnectedUser, Guest, User};
