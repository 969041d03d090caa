//! Single sign-on: the browser session at Tessera (`session`), the rows behind it (`store`),
//! an app asking to end it (`logout`, RP-Initiated Logout), and telling apps when it ends
//! (`backchannel`, Back-Channel Logout).

pub mod backchannel;
pub mod consent;
pub mod logout;
pub mod session;
pub mod store;

pub use session::{
    BrowserSession, EndReason, Origin, SignedIn, Started, end, end_all_of_user, find,
    record_client, sign_in, touch,
};
