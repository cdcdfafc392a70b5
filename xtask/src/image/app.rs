//! The app layer's file tree: `/bin/fluxion-main` plus the few files any image needs.
use std::sync::Arc;

use crate::build::Binary;
use crate::image::layer::{Data, Node, Tree};

pub const BINARY_PATH: &str = "/bin/fluxion-main";

/// `/bin/sh`, for `docker exec <container> sh` and anything that runs `/bin/sh -c`: Debian's
/// dash owns it there and is not in the runtime layer, so it points at the runtime layer's
/// bash, which runs as a POSIX shell when called `sh` (bash(1), "INVOCATION"). A link costs
/// nothing; dash would add a package for a second shell.
pub const SH_PATH: &str = "/bin/sh";
pub const SH_TARGET: &str = "bash";

pub fn tree(binary: &Binary) -> anyhow::Result<Tree> {
    let mut t = Tree::new();
    let file = |mode, text: &str| Node::File {
        mode,
        data: Data::Bytes(Arc::from(text.as_bytes())),
    };
    t.insert(
        BINARY_PATH,
        Node::File {
            mode: 0o755,
            data: binary.data(),
        },
    )?;
    t.insert(
        SH_PATH,
        Node::Symlink {
            target: SH_TARGET.into(),
        },
    )?;
    // Name lookups (`id`, `ls -l`) need passwd and group; the service itself runs as root,
    // which Supervisor expects of add-ons.
    t.insert(
        "/etc/passwd",
        file(0o644, "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
    )?;
    t.insert("/etc/group", file(0o644, "root:x:0:\nnogroup:x:65534:\n"))?;
    t.insert("/root", Node::Dir { mode: 0o700 })?;
    // Sticky and world-writable, as FHS /tmp must be.
    t.insert("/tmp", Node::Dir { mode: 0o1777 })?;
    // Supervisor bind-mounts the add-on's persistent storage here (options.json lives in it).
    t.insert("/data", Node::Dir { mode: 0o755 })?;
    Ok(t)
}
