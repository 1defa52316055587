//! Why one host could not be reached or could not do its step. Each variant
//! says what an operator needs to act on it.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub(crate) enum HostError {
    #[error("connection to {addr} timed out after {}s", after.as_secs_f32())]
    ConnectTimeout { addr: String, after: Duration },
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("jump host {jump}: {reason}")]
    Jump { jump: String, reason: String },
    #[error(
        "host key of {host} changed: the server presents {presented}, but {file} has {}; \
         if the node was reprovisioned, remove the old key with `ssh-keygen -R {host} -f {file}`",
        known.join(", ")
    )]
    HostKeyChanged {
        host: String,
        presented: String,
        known: Vec<String>,
        file: String,
    },
    #[error(
        "host key of {host} is not in {file} and --host-key-checking is strict (the server presents {presented})"
    )]
    HostKeyUnknown {
        host: String,
        presented: String,
        file: String,
    },
    #[error("host key of {host} is revoked in {file} line {line}")]
    HostKeyRevoked { host: String, file: String, line: usize },
    #[error("cannot record the host key of {host} in {file}: {reason}")]
    HostKeyRecord {
        host: String,
        file: String,
        reason: String,
    },
    #[error("host certificate of {host} refused: {reason} (known_hosts {file})")]
    HostCertificate {
        host: String,
        reason: String,
        file: String,
    },
    #[error(
        "host {host} presents a plain host key {presented}, not a certificate, though {file} line {line} \
         trusts a certificate authority for it; palisade does not learn a plain key for such a host \
         (give the node a host certificate, or add the key to {file} if it is the node's)"
    )]
    HostKeyNotCertified {
        host: String,
        presented: String,
        file: String,
        line: usize,
    },
    #[error("authentication as {user} failed ({method})")]
    Auth { user: String, method: String },
    #[error("ssh-agent: {0}")]
    Agent(String),
    #[error("ssh: {0}")]
    Ssh(#[from] russh::Error),
    #[error("remote step timed out after {}s", after.as_secs_f32())]
    StepTimeout { after: Duration },
    #[error("remote step was killed by signal {signal}")]
    Signal { signal: String },
    #[error("remote step ended without an exit status (connection lost?)")]
    NoExitStatus,
    #[error("sudo -n needs a password for {user} on this host (give it NOPASSWD)")]
    SudoPassword { user: String },
    #[error("remote step failed with exit code {code}: {stderr}")]
    Exit { code: u32, stderr: String },
    #[error("the node printed more than {} MiB in one step; palisade's scripts print a few kB", .limit >> 20)]
    OutputTooLarge { limit: usize },
    #[error("sudo -n failed: {said}")]
    Sudo { said: String },
}

impl HostError {
    /// Whether the host was never reached (as opposed to reached and failed).
    pub(crate) fn is_unreachable(&self) -> bool {
        matches!(
            self,
            HostError::ConnectTimeout { .. } | HostError::Connect { .. } | HostError::Jump { .. }
        )
    }

    /// Worth another connection attempt: nothing was decided by the host.
    pub(super) fn is_retryable(&self) -> bool {
        match self {
            HostError::ConnectTimeout { .. } | HostError::Connect { .. } => true,
            HostError::Ssh(e) => matches!(
                e,
                russh::Error::IO(_) | russh::Error::Disconnect | russh::Error::ConnectionTimeout
            ),
            _ => false,
        }
    }
}
