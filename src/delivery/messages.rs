//! Turning claimed rows into the bytes a worker sends.
//!
//! An edition is rendered once per category choice and encoded once into a
//! [`MessageTemplate`]; each reader's message is a splice of that template with the reader's
//! address, name, token and Message-ID. Transactional messages (confirmations) are built one
//! by one: they are rare.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context as _, Result};

use crate::config::Config;
use crate::domain::{EmailAddress, VerpKey};
use crate::edition::{self, EditionRenderer};
use crate::mail::mime::{MessageTemplate, Recipient};
use crate::mail::verp::{self, VerpItem};
use crate::store::{Claimed, ClaimedMail, EditionRow, MailKind, Store};

/// The renderings of the editions being sent, kept while they send.
#[derive(Default)]
pub(super) struct Renderings {
    renderers: HashMap<i64, EditionRenderer>,
    /// `None`: that category choice leaves the reader nothing to read.
    templates: HashMap<(i64, Option<String>), Option<Arc<MessageTemplate>>>,
}

impl Renderings {
    /// Forgets editions no longer sending: a daemon runs for months.
    pub(super) fn retain(&mut self, sending: &[EditionRow]) {
        self.renderers
            .retain(|id, _| sending.iter().any(|e| e.id == *id));
        self.templates
            .retain(|(id, _), _| sending.iter().any(|e| e.id == *id));
    }

    /// The encoded message for readers of `e` who chose `categories`, or `None` when that
    /// choice leaves nothing to send.
    pub(super) async fn template(
        &mut self,
        store: &Store,
        config: &Config,
        e: &EditionRow,
        categories: Option<&str>,
    ) -> Result<Option<Arc<MessageTemplate>>> {
        let key = (e.id, categories.map(str::to_owned));
        if let Some(t) = self.templates.get(&key) {
            return Ok(t.clone());
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = self.renderers.entry(e.id) {
            slot.insert(EditionRenderer::load(store, config, e.clone()).await?);
        }
        let renderer = self
            .renderers
            .get_mut(&e.id)
            .context("edition renderer missing")?;
        let template = match renderer.variant(config, categories) {
            Some(rendered) => {
                let headers =
                    edition::common_headers(config, renderer.list(), e.kind, &rendered.subject);
                Some(Arc::new(MessageTemplate::new(
                    &headers,
                    &rendered.text,
                    &rendered.html,
                )))
            }
            None => None,
        };
        self.templates.insert(key, template.clone());
        Ok(template)
    }
}

/// One reader's message of an edition, personalised into `out`; returns its Message-ID.
pub(super) fn personalise(
    key: &VerpKey,
    e: &EditionRow,
    c: &Claimed,
    template: &MessageTemplate,
    out: &mut Vec<u8>,
) -> String {
    let message_id = message_id_for(key, e, c.subscriber_id, template.message_id_domain());
    out.clear();
    template.personalise(
        &Recipient {
            to: &c.email,
            name: c.name.as_deref(),
            token: c.token.as_str(),
            message_id: &message_id,
        },
        out,
    );
    message_id
}

/// A Message-ID unique per (edition, subscriber) and stable across retries, so a copy sent
/// twice after a crash carries the same id and mail clients can fold the copies together. It
/// is derived, not stored: a bounce that quotes it names the edition and the reader. The
/// nonce is a MAC under the installation's key, so a forged bounce cannot name a reader it
/// makes up: without the key, one guess in 2^64 matches.
pub fn message_id_for(key: &VerpKey, e: &EditionRow, subscriber_id: i64, domain: &str) -> String {
    let tag = key.mac(&[
        b"dispatch message-id v1\0",
        &e.id.to_be_bytes(),
        e.created_at.to_text().as_bytes(),
        &subscriber_id.to_be_bytes(),
    ]);
    let nonce: String = tag[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("<e{}.s{}.{}@{}>", e.id, subscriber_id, nonce, domain)
}

/// A transactional message, ready to send, with its Message-ID.
pub(super) fn transactional(config: &Config, m: &ClaimedMail) -> Result<(Vec<u8>, String)> {
    match m.kind {
        MailKind::Confirm => confirmation(config, m),
    }
}

/// The double opt-in message: one link, to a page whose button confirms (a link scanner that
/// opens the URL confirms nobody).
fn confirmation(config: &Config, m: &ClaimedMail) -> Result<(Vec<u8>, String)> {
    use crate::i18n::{Arg, Language};
    use lettre::message::{Mailbox, MultiPart, SinglePart, header::ContentType};
    use maud::PreEscaped;
    let from = config.publication.from.mailbox().clone();
    let domain = config.publication.from.address().domain().to_owned();
    let confirm_url = format!(
        "{}/confirm/{}",
        config.web.public_url.base(),
        m.token.as_str()
    );
    let list_name = &m.list_name;
    let publication = &config.publication.name;
    // In the list's language, like its digests and the page the link opens.
    let lang = m
        .list_language
        .as_deref()
        .and_then(Language::parse)
        .unwrap_or(config.publication.language);
    let st = config.catalogue.strings(lang);
    let names = [
        ("list", Arg::Str(list_name)),
        ("publication", Arg::Str(publication)),
    ];
    let text = format!(
        "{}\n\n{}\n{confirm_url}\n\n{}\n\n{}\n",
        st.format("confirm-intro", &names),
        st.get("confirm-open-link"),
        st.get("confirm-ignore"),
        config.publication.postal_address
    );
    let rtl = lang.is_rtl();
    let html = maud::html! {
        div lang=(lang.tag()) dir=[rtl.then_some("rtl")] {
            p { (PreEscaped(st.format_html("confirm-intro", &names, &["list", "publication"]))) }
            p { a href=(confirm_url) { (st.get("page-confirm-button")) } }
            p { (st.get("confirm-ignore")) }
            p style="color:#666;font-size:12px" { (config.publication.postal_address) }
        }
    };
    let message_id = crate::mail::mime::message_id(0, m.id, &domain);
    let to: lettre::Address = m.to.as_str().parse().context("the reader's address")?;
    let msg = lettre::Message::builder()
        .from(from)
        .to(Mailbox::new(m.name.clone(), to))
        .subject(st.format("confirm-subject", &[("list", Arg::Str(list_name))]))
        .message_id(Some(message_id.clone()))
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(text),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html.into_string()),
                ),
        )
        .context("building the confirmation message")?;
    Ok((msg.formatted(), message_id))
}

/// The envelope sender (RFC 5321 `MAIL FROM`) of one message: its VERP address under
/// `[bounces] return_path_domain` when that is set, so a bounce names the message it is
/// about; otherwise `[publication] from`'s address.
pub(super) fn envelope_from(config: &Config, store: &Store, item: VerpItem) -> EmailAddress {
    match &config.bounces.return_path_domain {
        Some(domain) => verp::address(store.verp_key(), item, domain),
        None => config.publication.from.address().clone(),
    }
}
