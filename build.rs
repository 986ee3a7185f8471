//! Compiles the gRPC contract in `proto/` with protox (a protobuf compiler in
//! pure Rust, so no `protoc` has to be installed) and generates the tonic
//! server and client code. The descriptor set, with comments kept, is also
//! written to `OUT_DIR` so that server reflection can describe every message
//! the way the `.proto` files document it.

use std::{env, error::Error, fs, path::PathBuf};

use prost::Message as _;

const PROTO_ROOT: &str = "proto";
const PROTO_FILES: &[&str] = &[
    "proto/weiyu/line/v1/admin.proto",
    "proto/weiyu/line/v1/events.proto",
    "proto/weiyu/line/v1/messaging.proto",
    "proto/weiyu/line/v1/official_account.proto",
    "proto/weiyu/line/v1/outbound.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={file}");
    }

    let fds = protox::compile(PROTO_FILES, [PROTO_ROOT])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out_dir.join("line_descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
