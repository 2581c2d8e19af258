//! End-to-end tests: a real station on 127.0.0.1:0 over a generated library,
//! read by raw TCP clients the way players read it.

mod util;

mod catalog;
mod cli;
mod clicks;
mod faults;
mod http;
mod icy;
mod library;
mod ordering;
mod stream;
mod transition;
