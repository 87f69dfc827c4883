//! Verifications: a number rented for one service, the SMS it receives and the code in it.
pub mod codes;
