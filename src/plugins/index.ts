/**
 * The plugin host (issue 14): packages, manifests and their signatures,
 * installation pinned by digest, the sandbox, and the host that supervises
 * the enabled plugins behind the hook chains.
 */
export { HOST_CALLS, MANIFEST_FILE, ManifestError, compareVersions, parseManifest, parseManifestText, type HostCall, type HostCallName, type OnFailure, type PluginLimits, type PluginManifest } from './manifest.ts';
export { DEFAULT_PACKAGE_LIMITS, DIGEST_HEADER, PackageError, digestDirectory, extractTarball, type PackageDigest, type PackageFile, type PackageLimits } from './digest.ts';
export { SignatureError, formatPublicKey, generateSigningKey, keyIdHex, parsePublicKey, parseSecretKey, publicKeyLine, signMessage, verifyMessage, type PublicKey, type SecretKey, type VerifiedSignature } from './signature.ts';
export { inspectPackage, isTarball, signaturePath, type PluginPackage } from './package.ts';
export { PluginInstallError, PluginRegistry, type InstalledPlugin, type PluginRegistryOptions } from './installed.ts';
export * from './host/index.ts';
