//! One module per subcommand.

pub mod hunt;
pub mod ocsf;
pub mod rules;
