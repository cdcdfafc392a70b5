# A stand-in for nixpkgs offering only what flake.nix calls, so xtask/tests/flake.rs can
# evaluate the flake's `outputs` with plain `nix-instantiate --eval` (nixpkgs cannot be fetched
# on CI machines). Every function returns its arguments (paths as strings, so the result is
# JSON) tagged with `stub`, and every package says which platform it was made for: the test
# asserts what the real evaluation would be given. Imported like nixpkgs: `import nixpkgs { }`.
{ system ? null, localSystem ? null, crossSystem ? null, overlays ? [ ], stubTarget ? null }:
let
  lib = {
    genAttrs = names: f: builtins.listToAttrs (map (n: lib.nameValuePair n (f n)) names);
    nameValuePair = name: value: { inherit name value; };
    listToAttrs = builtins.listToAttrs;
    cleanSource = src: { stub = "cleanSource"; src = toString src; };
    # The two entries of nixpkgs' lib/systems/examples.nix the flake uses.
    systems.examples = {
      musl64 = { config = "x86_64-unknown-linux-musl"; };
      aarch64-multiplatform-musl = { config = "aarch64-unknown-linux-musl"; };
    };
  };

  # nixpkgs takes `system` or `localSystem` (a system string here) and an optional
  # `crossSystem` (an attrset with `config`).
  build = if localSystem != null then localSystem else system;
  host = if crossSystem != null then crossSystem.config else build;
  pkg = pname: { inherit pname; hostPlatform = host; };

  base = final: {
    inherit lib;
    buildPlatform = build;
    hostPlatform = host;
    targetPlatform = if stubTarget != null then stubTarget else host;
    bash = pkg "bash";
    coreutils = pkg "coreutils";
    git = pkg "git";
    skopeo = pkg "skopeo";
    qemu = pkg "qemu";
    mkShell = args: { stub = "mkShell"; } // args;
    # The flake interpolates "${...}/bin/<name>": the arguments travel in the path.
    writeShellApplication = args: {
      outPath = "stub-writeShellApplication:" + builtins.toJSON args;
    };
    makeRustPlatform = { cargo, rustc }: {
      buildRustPackage = args: args // {
        stub = "buildRustPackage";
        hostPlatform = host;
        inherit cargo rustc;
        cargoLock = args.cargoLock // { lockFile = toString args.cargoLock.lockFile; };
      };
    };
    # Tools that run on the build platform and emit code for the host (nixpkgs' splicing).
    pkgsBuildHost = import ./nixpkgs.nix {
      localSystem = build;
      stubTarget = host;
      inherit overlays;
    };
    # Packages for the build platform (dockerTools runs there).
    buildPackages = {
      dockerTools.streamLayeredImage = args: args // {
        stub = "streamLayeredImage";
        runsOn = build;
      };
    };
  };

  # Overlays as nixpkgs applies them: final: prev: { ... }, in order.
  pkgs = builtins.foldl' (prev: overlay: prev // overlay pkgs prev) (base pkgs) overlays;
in
pkgs
