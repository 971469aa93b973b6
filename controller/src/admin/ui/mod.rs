//! The status page served at the admin listener's `/`: server-rendered HTML ([`page`]) with
//! SVG charts drawn from the decision log ([`chart`]). Self-contained: no CDN, no build step.

mod chart;
mod page;

pub use page::{fragment, headers, nonce, page, PageData};
