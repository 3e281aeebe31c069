/**
 * The plugin host (issue 14). Built so far: packages, manifests and their
 * signatures. Installation, the sandbox and the JSON-RPC bridge come next.
 */
export { HOST_CALLS, MANIFEST_FILE, ManifestError, compareVersions, parseManifest, parseManifestText, type HostCall, type HostCallName, type OnFailure, type PluginLimits, type PluginManifest } from './manifest.ts';
export { DEFAULT_PACKAGE_LIMITS, DIGEST_HEADER, PackageError, digestDirectory, extractTarball, type PackageDigest, type PackageFile, type PackageLimits } from './digest.ts';
export { SignatureError, formatPublicKey, generateSigningKey, keyIdHex, parsePublicKey, parseSecretKey, publicKeyLine, signMessage, verifyMessage, type PublicKey, type SecretKey, type VerifiedSignature } from './signature.ts';
export { inspectPackage, isTarball, signaturePath, type PluginPackage } from './package.ts';
export { PluginInstallError, PluginRegistry, type InstalledPlugin, type PluginRegistryOptions } from './installed.ts';
