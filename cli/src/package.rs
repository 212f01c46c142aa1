//! `warden package`: `warden.wasm` as an OCI image, the way Istio's sidecars pull modules
//! (`WasmPlugin.url: oci://…`).
//!
//! Istio's image fetcher (istio/istio `pkg/wasm/imagefetcher.go`, read at commit 86c9f01,
//! 1.31 development) accepts three forms of image; Warden writes two of them:
//! - [`ImageFormat::Image`], the "compat" variant with standard OCI media types: one
//!   `application/vnd.oci.image.layer.v1.tar+gzip` layer (the last one, if several) holding a
//!   file named `plugin.wasm` (`extractOCIStandardImage`). Every registry and every image tool
//!   handles it.
//! - [`ImageFormat::Artifact`], the "oci" variant of the Wasm image specification: exactly two
//!   layers, one of type `application/vnd.module.wasm.content.layer.v1+wasm` that is the raw
//!   module (`extractOCIArtifactImage`), the other the `application/vnd.module.wasm.config.v1+json`
//!   configuration.
//!
//! Istio's `WasmPlugin.sha256` of an OCI module is compared with the image's manifest digest
//! (`pkg/wasm/cache.go`, `getOrFetch`: the fetcher returns `img.Digest()`), so the digest must
//! be computable from the module alone: the image is reproducible (no timestamps, a tar entry
//! with fixed owner, mode and time, a gzip header without name or time, JSON with fields in a
//! fixed order), and `warden compile --module` pins the digest without a registry.

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use oci_spec::image::{
    Arch, Descriptor, DescriptorBuilder, ImageConfigurationBuilder, ImageIndexBuilder,
    ImageManifestBuilder, MediaType, OciLayoutBuilder, Os, RootFsBuilder, Sha256Digest,
    ANNOTATION_REF_NAME,
};

/// The file Istio looks for in the compat variant's layer.
pub const PLUGIN_FILE: &str = "plugin.wasm";
/// The Wasm image specification's layer and configuration media types.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.module.wasm.config.v1+json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageFormat {
    /// A standard OCI image: one tar+gzip layer holding `plugin.wasm` (Istio's "compat" variant).
    Image,
    /// The Wasm OCI artifact: the raw module as a `…wasm.content.layer.v1+wasm` layer.
    Artifact,
}

/// An image, ready to be written as an OCI image layout or pinned by digest.
pub struct Image {
    /// The manifest, byte for byte as it is stored and digested.
    pub manifest: Vec<u8>,
    /// Every blob the manifest names (configuration and layers), with its hex SHA-256.
    pub blobs: Vec<(String, Vec<u8>)>,
}

impl Image {
    /// The manifest's digest (`sha256:…`): what registries report.
    pub fn digest(&self) -> String {
        format!("sha256:{}", self.digest_hex())
    }

    /// The manifest's digest as `WasmPlugin.sha256` spells it (hex only).
    pub fn digest_hex(&self) -> String {
        sha256_hex(&self.manifest)
    }
}

/// Reads a module, refusing a file that is not Wasm (a typo'd path to a YAML file would
/// otherwise be packaged or pinned).
pub fn read_module(path: &Path) -> Result<Vec<u8>> {
    let module = fs::read(path)
        .with_context(|| format!("reading {} (build it with `make wasm`)", path.display()))?;
    if !module.starts_with(b"\0asm") {
        bail!("{} is not a Wasm module", path.display());
    }
    Ok(module)
}

/// Builds the image of `module` in `format`. The same module always gives the same image.
pub fn build(module: &[u8], format: ImageFormat) -> Result<Image> {
    let mut blobs = Vec::new();
    let (config, layers) = match format {
        ImageFormat::Image => {
            let tar = plugin_tar(module)?;
            let diff_id = format!("sha256:{}", sha256_hex(&tar));
            let layer = gzip(&tar)?;
            let layer_descriptor = descriptor(MediaType::ImageLayerGzip, &layer)?;
            blobs.push(layer);
            let config = ImageConfigurationBuilder::default()
                .architecture(Arch::Wasm)
                .os(Os::Other("wasip1".into()))
                .rootfs(
                    RootFsBuilder::default()
                        .typ("layers")
                        .diff_ids(vec![diff_id])
                        .build()
                        .context("building the image configuration")?,
                )
                .build()
                .context("building the image configuration")?;
            let config = serde_json::to_vec(&config)?;
            let config_descriptor = descriptor(MediaType::ImageConfig, &config)?;
            blobs.push(config);
            (config_descriptor, vec![layer_descriptor])
        }
        ImageFormat::Artifact => {
            // The Wasm image specification's configuration describes the module's ABI and root
            // ids; Istio reads none of it, and Warden's plugin configuration travels in the
            // WasmPlugin, so it is the empty object.
            let config = b"{}".to_vec();
            let config_type = MediaType::Other(WASM_CONFIG_MEDIA_TYPE.into());
            let config_descriptor = descriptor(config_type.clone(), &config)?;
            let layers = vec![
                descriptor(MediaType::Other(WASM_LAYER_MEDIA_TYPE.into()), module)?,
                descriptor(config_type, &config)?,
            ];
            blobs.push(module.to_vec());
            blobs.push(config);
            (config_descriptor, layers)
        }
    };
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config)
        .layers(layers)
        .build()
        .context("building the image manifest")?;
    let manifest = serde_json::to_vec(&manifest)?;
    let blobs = blobs.into_iter().map(|blob| (sha256_hex(&blob), blob)).collect();
    Ok(Image { manifest, blobs })
}

/// Writes `image` as an OCI image layout in `dir` (created if absent), tagged `tag` in its
/// index: what `skopeo copy oci:DIR:TAG docker://…` and `oras cp --from-oci-layout` push.
/// An image already in `dir` is replaced; blobs are written before the index names them.
pub fn write_layout(image: &Image, dir: &Path, tag: &str) -> Result<()> {
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).with_context(|| format!("creating {}", blobs.display()))?;
    for (hex, blob) in &image.blobs {
        write(&blobs.join(hex), blob)?;
    }
    let manifest_hex = image.digest_hex();
    write(&blobs.join(&manifest_hex), &image.manifest)?;
    let layout = OciLayoutBuilder::default()
        .image_layout_version("1.0.0")
        .build()
        .context("building oci-layout")?;
    write(&dir.join("oci-layout"), &serde_json::to_vec(&layout)?)?;
    let manifest = DescriptorBuilder::default()
        .media_type(MediaType::ImageManifest)
        .digest(sha256_digest(&manifest_hex)?)
        .size(image.manifest.len() as u64)
        .annotations(HashMap::from([(ANNOTATION_REF_NAME.to_string(), tag.to_string())]))
        .build()
        .context("building the index")?;
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![manifest])
        .build()
        .context("building the index")?;
    write(&dir.join("index.json"), &serde_json::to_vec(&index)?)
}

/// The lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hmac_sha256::Hash::hash(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

fn sha256_digest(hex: &str) -> Result<Sha256Digest> {
    hex.parse().context("a SHA-256 digest")
}

fn descriptor(media_type: MediaType, blob: &[u8]) -> Result<Descriptor> {
    Ok(Descriptor::new(media_type, blob.len() as u64, sha256_digest(&sha256_hex(blob))?))
}

/// A tar holding only `plugin.wasm`, with nothing from the machine that built it.
fn plugin_tar(module: &[u8]) -> Result<Vec<u8>> {
    let mut header = tar::Header::new_ustar();
    header.set_path(PLUGIN_FILE)?;
    header.set_size(module.len() as u64);
    header.set_mode(0o444);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, module)?;
    Ok(builder.into_inner()?)
}

/// gzip without a file name or time in its header.
fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut encoder =
        flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use serde_json::Value;

    use super::*;

    const MODULE: &[u8] = b"\0asm\x01\0\0\0 a module";

    fn manifest(image: &Image) -> Value {
        serde_json::from_slice(&image.manifest).unwrap()
    }

    fn blob<'a>(image: &'a Image, descriptor: &Value) -> &'a [u8] {
        let digest = descriptor["digest"].as_str().unwrap().strip_prefix("sha256:").unwrap();
        let (_, blob) = image.blobs.iter().find(|(hex, _)| hex == digest).unwrap();
        assert_eq!(descriptor["size"], blob.len());
        blob
    }

    #[test]
    fn the_same_module_gives_the_same_digest() {
        for format in [ImageFormat::Image, ImageFormat::Artifact] {
            let first = build(MODULE, format).unwrap();
            let second = build(MODULE, format).unwrap();
            assert_eq!(first.manifest, second.manifest);
            assert_eq!(first.blobs, second.blobs);
            assert_ne!(first.digest(), build(b"\0asm\x01\0\0\0 another", format).unwrap().digest());
        }
        assert_ne!(
            build(MODULE, ImageFormat::Image).unwrap().digest(),
            build(MODULE, ImageFormat::Artifact).unwrap().digest()
        );
    }

    // istio/istio pkg/wasm/imagefetcher.go extractOCIStandardImage and extractWasmPluginBinary:
    // the last layer is tar+gzip and holds a file whose base name is plugin.wasm.
    #[test]
    fn the_image_form_is_what_istio_reads_as_the_compat_variant() {
        let image = build(MODULE, ImageFormat::Image).unwrap();
        let manifest = manifest(&image);
        assert_eq!(manifest["schemaVersion"], 2);
        assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(manifest["config"]["mediaType"], "application/vnd.oci.image.config.v1+json");
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(blob(&image, &layers[0])).read_to_end(&mut tar).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut entries = archive.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str(), Some(PLUGIN_FILE));
        assert_eq!(entry.header().mtime().unwrap(), 0);
        let mut module = Vec::new();
        entry.read_to_end(&mut module).unwrap();
        assert_eq!(module, MODULE);
        drop(entry);
        assert!(entries.next().is_none());
        let config: Value = serde_json::from_slice(blob(&image, &manifest["config"])).unwrap();
        assert_eq!(config["architecture"], "wasm");
        assert_eq!(config["os"], "wasip1");
        assert_eq!(config["rootfs"]["diff_ids"][0], format!("sha256:{}", sha256_hex(&tar)));
        assert!(config.get("created").is_none());
    }

    // istio/istio pkg/wasm/imagefetcher.go extractOCIArtifactImage: exactly two layers, one of
    // them the raw module with the Wasm content media type.
    #[test]
    fn the_artifact_form_is_what_istio_reads_as_the_oci_variant() {
        let image = build(MODULE, ImageFormat::Artifact).unwrap();
        let manifest = manifest(&image);
        assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(manifest["config"]["mediaType"], WASM_CONFIG_MEDIA_TYPE);
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0]["mediaType"], WASM_LAYER_MEDIA_TYPE);
        assert_eq!(blob(&image, &layers[0]), MODULE);
        assert_eq!(layers[1]["mediaType"], WASM_CONFIG_MEDIA_TYPE);
        assert_eq!(blob(&image, &layers[1]), b"{}");
    }

    #[test]
    fn the_layout_names_the_manifest_by_tag_and_holds_every_blob() {
        let dir = std::env::temp_dir().join(format!("warden-package-{}", std::process::id()));
        let image = build(MODULE, ImageFormat::Image).unwrap();
        write_layout(&image, &dir, "1.2.3").unwrap();
        let layout: Value =
            serde_json::from_slice(&fs::read(dir.join("oci-layout")).unwrap()).unwrap();
        assert_eq!(layout["imageLayoutVersion"], "1.0.0");
        let index: Value =
            serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
        let entry = &index["manifests"][0];
        assert_eq!(entry["digest"], image.digest());
        assert_eq!(entry["size"], image.manifest.len());
        assert_eq!(entry["annotations"][ANNOTATION_REF_NAME], "1.2.3");
        let hex = image.digest().strip_prefix("sha256:").unwrap().to_string();
        let blobs = dir.join("blobs/sha256");
        assert_eq!(fs::read(blobs.join(&hex)).unwrap(), image.manifest);
        for (hex, blob) in &image.blobs {
            assert_eq!(&fs::read(blobs.join(hex)).unwrap(), blob);
        }
        fs::remove_dir_all(dir).unwrap();
    }
}
