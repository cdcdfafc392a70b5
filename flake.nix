{
  # Thin on purpose: `cargo xtask` is the pipeline (docs/images.md). This flake gives a dev
  # shell, apps that run the xtask, and the same images built the Nix way. Facts about the
  # add-on (version, labels, platform per arch) come from nix/addon-meta.json, which
  # `cargo xtask meta` writes from addon/config.yaml and CI checks, so they never drift.
  description = "FluxION Home Assistant add-on: reproducible amd64/aarch64 images";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";
    rust-overlay = {
      url = "github:oxalica/rust-overlay";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs = { self, nixpkgs, rust-overlay }:
    let
      inherit (nixpkgs) lib;
      meta = builtins.fromJSON (builtins.readFile ./nix/addon-meta.json);
      names = import ./nix/names.nix { inherit (meta) arches; };
      systems = [ "x86_64-linux" "aarch64-linux" ];
      overlays = [ rust-overlay.overlays.default ];
      forSystems = f: lib.genAttrs systems (system: f system (import nixpkgs { inherit system overlays; }));

      # Home Assistant arch -> nixpkgs cross platform (static musl, like the xtask build).
      crossSystem = {
        amd64 = lib.systems.examples.musl64;
        aarch64 = lib.systems.examples.aarch64-multiplatform-musl;
      };

      # The toolchain rust-toolchain.toml pins (1.95.0 with both musl targets).
      toolchainOf = pkgs: pkgs.rust-bin.fromRustupToolchainFile ./rust-toolchain.toml;

      image = system: arch:
        let
          cross = import nixpkgs {
            localSystem = system;
            crossSystem = crossSystem.${arch};
            inherit overlays;
          };
          toolchain = toolchainOf cross.pkgsBuildHost;
          rustPlatform = cross.makeRustPlatform { cargo = toolchain; rustc = toolchain; };
          fluxion = rustPlatform.buildRustPackage {
            pname = "fluxion-main";
            inherit (meta) version;
            src = lib.cleanSource self;
            cargoLock.lockFile = ./Cargo.lock;
            cargoBuildFlags = [ "--package" "fluxion" "--bin" "fluxion-main" ];
            doCheck = false;
          };
          m = meta.images.${arch};
        in
        cross.buildPackages.dockerTools.streamLayeredImage {
          name = "fluxion-ha";
          tag = arch;
          # nixpkgs defaults this to the *build* host's GOARCH, which mislabels cross-built
          # images; say it explicitly (amd64 / arm64, from `cargo xtask meta`).
          architecture = m.architecture;
          contents = [ cross.bash cross.coreutils fluxion ];
          config = {
            Cmd = [ "/bin/fluxion-main" ];
            Env = [ "PATH=/bin:/usr/bin" ];
            ExposedPorts = { "8099/tcp" = { }; };
            Labels = m.labels;
          };
        };

      # `nix run .#<app>` runs the xtask in the current checkout with the pinned toolchain.
      xtaskApp = pkgs: name: args: {
        type = "app";
        program = "${pkgs.writeShellApplication {
          inherit name;
          runtimeInputs = [ (toolchainOf pkgs) pkgs.git ];
          text = ''exec cargo xtask ${args} "$@"'';
        }}/bin/${name}";
      };
    in
    {
      devShells = forSystems (system: pkgs: {
        default = pkgs.mkShell {
          packages = [ (toolchainOf pkgs) pkgs.skopeo pkgs.qemu ];
        };
      });

      packages = forSystems (system: pkgs: lib.listToAttrs (map
        (arch: lib.nameValuePair (names.package arch) (image system arch))
        meta.arches));

      apps = forSystems (system: pkgs:
        lib.listToAttrs (map
          (arch: lib.nameValuePair (names.load arch) (xtaskApp pkgs (names.load arch) "load ${arch}"))
          meta.arches)
        // { ${names.buildAll} = xtaskApp pkgs names.buildAll "image --arch all"; });
    };
}
