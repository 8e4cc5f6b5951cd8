//! One module per subcommand.

pub mod ocsf;
