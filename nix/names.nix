# The flake's output names, in one place. flake.nix builds its outputs from these, and
# xtask/tests/flake.rs evaluates this file with plain `nix-instantiate --eval` (no nixpkgs
# needed) to check that README.md and docs/images.md promise exactly these names.
{ arches }:
rec {
  package = arch: "dockerImage-${arch}";
  load = arch: "load-${arch}";
  buildAll = "build-all-images";

  all = {
    devShells = [ "default" ];
    packages = map package arches;
    apps = map load arches ++ [ buildAll ];
  };
}
