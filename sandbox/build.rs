//! Compiles the Salesforce Pub/Sub API contract (`schemas/salesforce/pubsub_api.proto`) with
//! `protox`, a pure-Rust protobuf compiler, so building needs no system `protoc`. The generated
//! server and client stay in `OUT_DIR` and are included by `salesforce::pubsub::proto`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = "../schemas/salesforce";
    let proto = format!("{dir}/pubsub_api.proto");
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([&proto], [dir])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
