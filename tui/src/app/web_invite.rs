//! `/web-invite`: the node's answer to [`Effect::WebInvite`] shown as a join link.

use super::{App, Effect, Now, Overlay};

/// What `/web-invite` says when this `hark` serves no browser client.
pub const NO_WEB: &str = "start hark with --web ADDR to serve the browser client";

impl App {
    /// The node's answer to [`Effect::WebInvite`]: the link in a box with its QR code (and
    /// on the clipboard where the terminal allows), or why there is none.
    pub fn on_web_invite(
        &mut self,
        name: Option<String>,
        made: Result<String, String>,
        now: Now,
    ) -> Vec<Effect> {
        match made {
            Ok(url) => {
                self.overlay = Some(Overlay::WebInvite {
                    url: url.clone(),
                    name,
                });
                vec![Effect::Copy(url)]
            }
            Err(why) => {
                self.set_hint(format!("no join link: {why}"), true, now.at);
                Vec::new()
            }
        }
    }
}
