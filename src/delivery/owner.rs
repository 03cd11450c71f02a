//! Who this process is, and whether another registered sender on this host still runs.
//!
//! A lease names its holder by host, process id and process start. The start matters because
//! pids are reused: a holder counts as alive only if a process with its pid exists *and*
//! started at the same moment of the same boot. On Linux that is the boot id
//! (`/proc/sys/kernel/random/boot_id`) and field 22 of `/proc/PID/stat` (start time in clock
//! ticks since boot, see proc(5)). Elsewhere liveness cannot be told, and leases simply run
//! out.

use crate::store::{SenderIdentity, SenderRow};

/// This process's identity, with `node` as the name operators see (the host name if `None`).
pub fn current(node: Option<&str>) -> SenderIdentity {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let pid = std::process::id();
    SenderIdentity {
        node: node.map_or_else(|| host.clone(), str::to_owned),
        started: start_of(pid).unwrap_or_else(|| "unknown".to_owned()),
        host,
        pid,
    }
}

/// What another sender registered on this host looks like now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Its process runs (or this platform cannot tell): leave its leases alone.
    Alive,
    /// Its process is gone: its leases can be taken over at once.
    Dead,
}

/// Whether the sender registered as `row` still runs. Only meaningful for rows of this host.
pub fn liveness(row: &SenderRow) -> Liveness {
    if row.started == "unknown" {
        return Liveness::Alive;
    }
    let Ok(pid) = u32::try_from(row.pid) else {
        return Liveness::Dead;
    };
    match start_of(pid) {
        Some(now) if now == row.started => Liveness::Alive,
        Some(_) => Liveness::Dead,
        None if cfg!(target_os = "linux") => Liveness::Dead,
        None => Liveness::Alive,
    }
}

/// The start identity of process `pid`: `BOOT_ID:START_TICKS`, or `None` if there is no such
/// process (or this is not Linux).
fn start_of(pid: u32) -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // proc(5): "pid (comm) state ppid …"; comm may contain spaces and parentheses, so the
    // fields are counted from the last ')'. starttime is field 22, the 20th after comm.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let start = after_comm.split_whitespace().nth(19)?;
    Some(format!("{}:{start}", boot.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DbTime;

    fn row(who: &SenderIdentity) -> SenderRow {
        SenderRow {
            id: 1,
            host: who.host.clone(),
            pid: i64::from(who.pid),
            started: who.started.clone(),
            node: who.node.clone(),
            heartbeat_at: DbTime::now(),
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn this_process_is_alive_and_an_exited_one_is_dead() {
        let me = current(None);
        assert_ne!(me.started, "unknown");
        assert_eq!(liveness(&row(&me)), Liveness::Alive);

        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let started = start_of(pid);
        child.wait().unwrap();
        let gone = SenderRow {
            pid: i64::from(pid),
            started: started.unwrap_or_else(|| format!("{}:1", "x")),
            ..row(&me)
        };
        assert_eq!(liveness(&gone), Liveness::Dead);

        // Same pid, another start: a reused pid is not the holder.
        let reused = SenderRow {
            started: format!("{}-other", me.started),
            ..row(&me)
        };
        assert_eq!(liveness(&reused), Liveness::Dead);
    }
}
