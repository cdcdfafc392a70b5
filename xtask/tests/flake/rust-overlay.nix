# A stand-in for oxalica/rust-overlay's flake: its overlay adds `rust-bin`, whose
# `fromRustupToolchainFile` returns what it was given and for which platforms.
{
  overlays.default = final: prev: {
    rust-bin.fromRustupToolchainFile = file: {
      stub = "fromRustupToolchainFile";
      file = toString file;
      runsOn = final.hostPlatform;
      targets = final.targetPlatform;
    };
  };
}
