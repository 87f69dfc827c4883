//! The `namaskah.v1` contract as Rust: messages, gRPC clients and servers, and the encoded
//! descriptor set (for server reflection and the edge's JSON transcoding).

/// Every message and service of package `namaskah.v1`.
pub mod v1 {
    #![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]
    tonic::include_proto!("namaskah.v1");
}

/// The `google.api` options the contract uses (`google.api.http`, field behaviour).
pub mod google {
    pub mod api {
        #![allow(clippy::doc_lazy_continuation)]
        tonic::include_proto!("google.api");
    }
}

/// The encoded `google.protobuf.FileDescriptorSet` of every file in the contract,
/// including its imports.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("namaskah_descriptor");
