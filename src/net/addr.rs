//! Address resolution that never blocks the loop.
//!
//! `std::net::ToSocketAddrs` may call `getaddrinfo`, which blocks the thread,
//! and a generic `impl std::net::ToSocketAddrs` gives no way to tell a numeric
//! address from a host name beforehand. So, like tokio, we have our own sealed
//! trait: numeric forms are parsed in place, host names go to a helper thread.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::blocking;

/// Anything fiberloop's sockets accept as an address: the same forms as
/// [`std::net::ToSocketAddrs`] (`SocketAddr`, `(IpAddr, u16)`, `"host:port"`,
/// `("host", port)`, slices of `SocketAddr`, and references to these).
///
/// Host names are resolved on a helper thread, so only the calling fiber waits.
/// This trait is sealed: it cannot be implemented outside fiberloop.
pub trait ToSocketAddrs: sealed::Sealed {
    /// The addresses, resolving host names off the loop.
    #[doc(hidden)]
    fn resolve(&self) -> io::Result<Vec<SocketAddr>>;
}

mod sealed {
    /// Keeps `ToSocketAddrs` closed to other crates.
    pub trait Sealed {}
}

/// Resolves `"host:port"` with `getaddrinfo` on a helper thread.
fn lookup(host_and_port: String) -> io::Result<Vec<SocketAddr>> {
    blocking::unblock(move || {
        std::net::ToSocketAddrs::to_socket_addrs(&host_and_port).map(Iterator::collect)
    })?
}

macro_rules! numeric {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl ToSocketAddrs for $t {
            fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
                Ok(std::net::ToSocketAddrs::to_socket_addrs(self)?.collect())
            }
        }
    )*};
}

// These never touch the resolver: std converts them without a lookup.
numeric!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16)
);

impl sealed::Sealed for [SocketAddr] {}
impl ToSocketAddrs for [SocketAddr] {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(self.to_vec())
    }
}

impl sealed::Sealed for str {}
impl ToSocketAddrs for str {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        match self.parse::<SocketAddr>() {
            Ok(addr) => Ok(vec![addr]),
            Err(_) => lookup(self.to_owned()),
        }
    }
}

impl sealed::Sealed for String {}
impl ToSocketAddrs for String {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        self.as_str().resolve()
    }
}

impl sealed::Sealed for (&str, u16) {}
impl ToSocketAddrs for (&str, u16) {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        let (host, port) = *self;
        match host.parse::<IpAddr>() {
            Ok(ip) => Ok(vec![SocketAddr::new(ip, port)]),
            Err(_) => lookup(format!("{host}:{port}")),
        }
    }
}

impl sealed::Sealed for (String, u16) {}
impl ToSocketAddrs for (String, u16) {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        (self.0.as_str(), self.1).resolve()
    }
}

impl<T: ToSocketAddrs + ?Sized> sealed::Sealed for &T {}
impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        (**self).resolve()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_forms_parse_in_place() {
        let want: SocketAddr = "127.0.0.1:80".parse().unwrap();
        assert_eq!("127.0.0.1:80".resolve().unwrap(), vec![want]);
        assert_eq!(("127.0.0.1", 80).resolve().unwrap(), vec![want]);
        assert_eq!((Ipv4Addr::LOCALHOST, 80).resolve().unwrap(), vec![want]);
        assert_eq!(String::from("[::1]:9").resolve().unwrap()[0].port(), 9);
    }

    #[test]
    fn a_bad_address_is_an_error_not_a_panic() {
        assert!("no port here".resolve().is_err());
    }
}
