pub mod audit;
pub mod flows;
pub mod init;
pub mod runs;
