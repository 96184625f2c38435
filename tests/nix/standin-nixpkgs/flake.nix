{
  description = "A stand-in for nixpkgs, just enough to check bkc's flake offline";

  outputs = { self }: {
    lib = import ./lib.nix;
    legacyPackages = self.lib.genAttrs [ "x86_64-linux" "aarch64-linux" ]
      (system: import ./pkgs.nix { inherit system; });
  };
}
