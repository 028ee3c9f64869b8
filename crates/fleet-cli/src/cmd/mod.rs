pub mod audit;
pub mod corpus;
pub mod flows;
pub mod init;
pub mod runs;
