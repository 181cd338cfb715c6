//! The host side: everything that touches this machine. Files written atomically under
//! an injected root (`fsapply`), unix users, releases and repositories, Redis secrets,
//! systemd over D-Bus (`systemd`), and the convergence records of an interrupted apply.

pub mod caller;
pub mod child;
pub mod fault;
pub mod fsapply;
pub mod git;
pub mod health;
pub mod here;
pub mod listening;
pub mod load;
pub mod lua_syntax;
pub mod optional;
pub mod overview;
pub mod parallel;
pub mod peer;
pub mod portholder;
pub mod redis_client;
pub mod redis_data;
pub mod release;
pub mod release_info;
pub mod reown;
pub mod secrets;
pub mod smoke;
pub mod systemd;
pub mod users;
pub mod validate;
