//! Compiles every `.proto` under `namaskah/v1` into Rust (messages, clients, servers) and
//! writes the encoded `FileDescriptorSet` that reflection and the edge read at run time.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs, not baked in when it is compiled: a build script compiled
    // for one checkout may be reused for another (the same sources at another path).
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = root.as_path();
    let mut protos: Vec<String> = std::fs::read_dir(root.join("namaskah/v1"))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .map(|path| path.display().to_string())
        .collect();
    protos.sort();
    for proto in &protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    println!("cargo:rerun-if-changed={}", root.join("google").display());

    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let well_known = protoc_bin_vendored::include_path()?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    config.file_descriptor_set_path(out_dir.join("namaskah_descriptor.bin"));

    let includes = [root.display().to_string(), well_known.display().to_string()];
    let proto_refs: Vec<&str> = protos.iter().map(String::as_str).collect();
    let include_refs: Vec<&str> = includes.iter().map(String::as_str).collect();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_with_config(config, &proto_refs, &include_refs)?;
    Ok(())
}
