//! A TCP stream that acknowledges what it reads at once.
//!
//! sshd runs a command without a terminal with Nagle's algorithm on, so a
//! short packet it writes while an earlier one is unacknowledged waits for
//! that acknowledgement: the second half of an exchange (USERAUTH_SUCCESS
//! after SERVICE_ACCEPT, the script's reply after CHANNEL_SUCCESS) sits on
//! the node until palisade's kernel acknowledges the first half. Linux
//! delays a pure acknowledgement by up to 40 ms hoping to piggyback it on
//! data, and palisade often has nothing to send then. `TCP_QUICKACK` after
//! every read turns that delay off (the kernel clears the flag as it goes,
//! so it is set again each time); the cost is one `setsockopt` per read.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A [`TcpStream`] that sets `TCP_QUICKACK` after every read that got data.
pub(super) struct QuickAck(pub(super) TcpStream);

impl QuickAck {
    /// Linux only: elsewhere (a macOS laptop) there is no such option, and
    /// sshd's held packets wait for the delayed acknowledgement.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn quickack(&self) {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: a valid socket descriptor owned by `self.0`, and a pointer
        // to an int of the size given. A failure only loses the hint.
        unsafe {
            libc::setsockopt(
                self.0.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&raw const on).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn quickack(&self) {}
}

impl AsyncRead for QuickAck {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = self.get_mut();
        let polled = Pin::new(&mut this.0).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.quickack();
        }
        polled
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// What goes through is what was sent, both ways. (The option is only a
    /// hint; it is read back only to show this kernel has it.)
    #[tokio::test]
    async fn it_passes_data_through_and_sets_the_option() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let mut ours = QuickAck(client.unwrap());
        let (mut theirs, _) = server.unwrap();
        ours.write_all(b"SSH-2.0-palisade\r\n").await.unwrap();
        let mut got = [0u8; 18];
        theirs.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"SSH-2.0-palisade\r\n");
        theirs.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await.unwrap();
        let mut back = [0u8; 21];
        ours.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"SSH-2.0-OpenSSH_9.2\r\n");
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let mut on: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: a valid socket, and an int with its size for the answer.
            let rc = unsafe {
                libc::getsockopt(
                    ours.0.as_raw_fd(),
                    libc::IPPROTO_TCP,
                    libc::TCP_QUICKACK,
                    (&raw mut on).cast(),
                    &mut len,
                )
            };
            assert_eq!(rc, 0);
        }
        ours.shutdown().await.unwrap();
    }
}
