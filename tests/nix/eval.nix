# Evaluates a NixOS-style module of bkc without nixpkgs, for the tests: each option of
# services.bkc takes its value from `settings` or else its default and must pass its type's
# check; `config` holds only those values (the module's own output fed back would recurse
# forever); the result is the module's config with mkIf resolved.
{ module, settings ? { } }:
let
  lib = import ./standin-nixpkgs/lib.nix;
  pkgs = import ./standin-nixpkgs/pkgs.nix { system = "x86_64-linux"; };
  evaluated = import module { inherit config lib pkgs; };
  # The package is never built: only its store path ends up in the units.
  given = {
    package = derivation { name = "bkc-0"; system = "x86_64-linux"; builder = "/bin/sh"; };
  } // settings;
  value = name: option:
    let v = given.${name} or option.default;
    in if option.type.check v then v else throw "services.bkc.${name} is not a ${option.type.name}";
  config.services.bkc = builtins.mapAttrs value evaluated.options.services.bkc;
  resolve = x:
    if builtins.isAttrs x && (x._type or null) == "if" then
      (if x.condition then resolve x.content else { })
    else if builtins.isAttrs x && (x.type or null) != "derivation" then
      builtins.mapAttrs (_: resolve) x
    else
      x;
in
resolve evaluated.config
