pub mod flows;
pub mod init;
