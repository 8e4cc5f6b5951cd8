//! One module per subcommand.

pub mod agent;
pub mod hunt;
pub mod ocsf;
pub mod rules;
