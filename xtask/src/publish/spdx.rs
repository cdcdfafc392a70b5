//! `<dir>/fluxion-ha-<arch>.spdx.json`: each image's SBOM (sbom/), the SPDX 2.3 JSON document
//! (the same bytes the registry referrer carries), written to a temp
//! file beside it and renamed. An SBOM already there with the same bytes is not rewritten (a
//! no-op rebuild writes nothing, issue 7).
use std::path::PathBuf;

use super::{Assembled, Format, Output, Publisher, Written};
use crate::atomic;
use crate::sbom::Sbom;

#[derive(Debug, Clone)]
pub struct SpdxFiles {
    pub dir: PathBuf,
}

impl SpdxFiles {
    pub fn path(&self, sbom: &Sbom) -> PathBuf {
        self.dir.join(Sbom::file_name(sbom.arch))
    }
}

impl Publisher for SpdxFiles {
    fn format(&self) -> Format {
        Format::Spdx
    }

    fn needs_sbom(&self) -> bool {
        true
    }

    fn publish(&self, a: &Assembled) -> anyhow::Result<Vec<Output>> {
        a.images
            .iter()
            .map(|image| {
                let sbom = a.sbom(image.arch, "the SPDX file")?;
                let path = self.path(sbom);
                let bytes = &sbom.document.bytes;
                if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
                    atomic::write(&path, bytes)?;
                }
                tracing::info!(arch = %image.arch, sbom = %path.display(), "SBOM written");
                Ok(Output {
                    format: Format::Spdx,
                    arch: Some(image.arch),
                    location: path.display().to_string(),
                    path: Some(path),
                    names: vec![sbom.document.digest.clone()],
                    written: Some(Written {
                        sha256: sbom.document.digest.clone(),
                        size: sbom.document.size,
                    }),
                })
            })
            .collect()
    }
}
