# Evaluate a flake.nix's `outputs` with the stand-in inputs beside this file:
#   nix-instantiate --eval --strict --json outputs.nix --arg flake /path/to/flake.nix
{ flake }:
let
  f = import flake;
  nixpkgs = {
    outPath = toString ./nixpkgs.nix;
    inherit ((import ./nixpkgs.nix { system = "x86_64-linux"; })) lib;
  };
  outputs = f.outputs {
    self = { outPath = toString (dirOf flake); };
    inherit nixpkgs;
    rust-overlay = import ./rust-overlay.nix;
  };
in
{
  inherit (outputs) packages apps devShells;
  inputs = builtins.attrNames f.inputs;
}
