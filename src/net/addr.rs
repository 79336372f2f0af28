//! Address resolution that never blocks the loop.
//!
//! `std::net::ToSocketAddrs` may call `getaddrinfo`, which blocks the thread,
//! and a generic `impl std::net::ToSocketAddrs` gives no way to tell a numeric
//! address from a host name beforehand. So, like tokio, we have our own sealed
//! trait: numeric forms are parsed in place, host names go to a helper thread
//! (the fiber parks meanwhile, or the async task awaits).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::blocking;

/// Anything fiberloop's sockets accept as an address: the same forms as
/// [`std::net::ToSocketAddrs`] (`SocketAddr`, `(IpAddr, u16)`, `"host:port"`,
/// `("host", port)`, slices of `SocketAddr`, and references to these).
///
/// Host names are resolved on a helper thread, so only the calling fiber or
/// task waits. This trait is sealed: it cannot be implemented outside fiberloop.
pub trait ToSocketAddrs: sealed::Sealed {
    /// The addresses if they are numeric, or the `host:port` to look up.
    #[doc(hidden)]
    fn lookup(&self) -> io::Result<Lookup>;

    /// The addresses, resolving host names off the loop (blocking the fiber).
    #[doc(hidden)]
    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        match self.lookup()? {
            Lookup::Done(addrs) => Ok(addrs),
            Lookup::Host(host) => blocking::unblock(move || getaddrinfo(&host))?,
        }
    }
}

/// What [`ToSocketAddrs::lookup`] found: addresses, or a name to resolve.
#[doc(hidden)]
#[derive(Debug)]
pub enum Lookup {
    /// Numeric: no resolver needed.
    Done(Vec<SocketAddr>),
    /// A `host:port` for `getaddrinfo`.
    Host(String),
}

/// Resolves `addr` without blocking an async task: numeric forms at once, host
/// names on a helper thread.
pub(crate) async fn resolve_async<A: ToSocketAddrs + ?Sized>(
    addr: &A,
) -> io::Result<Vec<SocketAddr>> {
    match addr.lookup()? {
        Lookup::Done(addrs) => Ok(addrs),
        Lookup::Host(host) => blocking::unblock_async(move || getaddrinfo(&host)).await?,
    }
}

fn getaddrinfo(host_and_port: &str) -> io::Result<Vec<SocketAddr>> {
    std::net::ToSocketAddrs::to_socket_addrs(host_and_port).map(Iterator::collect)
}

mod sealed {
    /// Keeps `ToSocketAddrs` closed to other crates.
    pub trait Sealed {}
}

macro_rules! numeric {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl ToSocketAddrs for $t {
            fn lookup(&self) -> io::Result<Lookup> {
                // std converts these forms without a lookup.
                Ok(Lookup::Done(std::net::ToSocketAddrs::to_socket_addrs(self)?.collect()))
            }
        }
    )*};
}

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
    fn lookup(&self) -> io::Result<Lookup> {
        Ok(Lookup::Done(self.to_vec()))
    }
}

impl sealed::Sealed for str {}
impl ToSocketAddrs for str {
    fn lookup(&self) -> io::Result<Lookup> {
        Ok(match self.parse::<SocketAddr>() {
            Ok(addr) => Lookup::Done(vec![addr]),
            Err(_) => Lookup::Host(self.to_owned()),
        })
    }
}

impl sealed::Sealed for String {}
impl ToSocketAddrs for String {
    fn lookup(&self) -> io::Result<Lookup> {
        self.as_str().lookup()
    }
}

impl sealed::Sealed for (&str, u16) {}
impl ToSocketAddrs for (&str, u16) {
    fn lookup(&self) -> io::Result<Lookup> {
        let (host, port) = *self;
        Ok(match host.parse::<IpAddr>() {
            Ok(ip) => Lookup::Done(vec![SocketAddr::new(ip, port)]),
            Err(_) => Lookup::Host(format!("{host}:{port}")),
        })
    }
}

impl sealed::Sealed for (String, u16) {}
impl ToSocketAddrs for (String, u16) {
    fn lookup(&self) -> io::Result<Lookup> {
        (self.0.as_str(), self.1).lookup()
    }
}

impl<T: ToSocketAddrs + ?Sized> sealed::Sealed for &T {}
impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    fn lookup(&self) -> io::Result<Lookup> {
        (**self).lookup()
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
        assert!(matches!(
            "example.org:80".lookup().unwrap(),
            Lookup::Host(_)
        ));
    }

    #[test]
    fn a_bad_address_is_an_error_not_a_panic() {
        assert!("no port here".resolve().is_err());
    }
}
