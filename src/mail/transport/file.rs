//! The outbox transport: one `.eml` file per message in a folder (development, previews,
//! dry runs).

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{SendError, header_value};

/// Makes temporary and fallback file names unique within the process.
static FILE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes one `.eml`, named after the Message-ID (so a resend replaces the file), through a
/// temporary name and a rename so that a crash never leaves half a message under the final
/// name.
pub(super) async fn write_eml(dir: &Path, bytes: &[u8]) -> Result<(), SendError> {
    let stem: String = match header_value(bytes, "Message-ID") {
        Some(mid) => mid
            .trim_matches(['<', '>'])
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@' | '+') {
                    c
                } else {
                    '_'
                }
            })
            .take(200)
            .collect(),
        None => String::new(),
    };
    let stem = if stem.is_empty() || stem.starts_with('.') {
        format!(
            "{}-{}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.f"),
            std::process::id(),
            FILE_COUNTER.fetch_add(1, Ordering::Relaxed)
        )
    } else {
        stem
    };
    let tmp = dir.join(format!(
        ".{stem}.{}.tmp",
        FILE_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let dest = dir.join(format!("{stem}.eml"));
    let io_err = |e: io::Error| SendError::Fatal {
        reason: format!("cannot write to the outbox {}: {e}", dir.display()),
    };
    let write = async {
        use tokio::io::AsyncWriteExt as _;
        let mut f = tokio::fs::File::create(&tmp).await?;
        f.write_all(bytes).await?;
        f.sync_all().await?;
        drop(f);
        tokio::fs::rename(&tmp, &dest).await
    };
    if let Err(e) = write.await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(io_err(e));
    }
    tracing::debug!(
        message_id = header_value(bytes, "Message-ID").unwrap_or("-"),
        "written to the outbox"
    );
    Ok(())
}
