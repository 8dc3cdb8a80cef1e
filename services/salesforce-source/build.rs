//! Compiles the Salesforce Pub/Sub API contract (`schemas/salesforce/pubsub_api.proto`) with
//! `protox` (pure Rust, no system `protoc`). Only the client is generated; it stays in
//! `OUT_DIR` and is included by `src/proto.rs`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = "../../schemas/salesforce";
    let proto = format!("{dir}/pubsub_api.proto");
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([&proto], [dir])?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
