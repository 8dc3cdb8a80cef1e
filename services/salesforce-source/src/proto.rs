//! The generated Pub/Sub API types and client (`eventbus.v1`, compiled by `build.rs` from
//! `schemas/salesforce/pubsub_api.proto`). Generated code stays in `OUT_DIR`.

#![allow(
    clippy::all,
    clippy::pedantic,
    missing_docs,
    unreachable_pub,
    rustdoc::all
)]

tonic::include_proto!("eventbus.v1");
