pub mod audit;
pub mod corpus;
pub mod flows;
pub mod gate;
pub mod init;
pub mod runs;
pub mod serve;
pub mod worker;
