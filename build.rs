//! fiberloop's build script does nothing: it exists because Cargo's `links`
//! key (in Cargo.toml) needs one. That key makes Cargo refuse a build with
//! two fiberloop versions, whose `hook` features would otherwise both define
//! `recv`, `send`, ... and one copy's hooks would silently serve the other
//! copy's fibers as if they were plain threads (docs/hook.md).

fn main() {}
