//! One module per subcommand.

pub mod ocsf;
pub mod rules;
