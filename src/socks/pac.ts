/**
 * The proxy auto-config file served at `/proxy.pac`: mesh names (`*.serval` and bare
 * 64-hex SIDs) go through this proxy, everything else DIRECT. It names the proxy as an
 * HTTP proxy ("PROXY"), because browsers always pass host names to HTTP proxies, while
 * SOCKS entries in PAC files are resolved locally by some of them and mesh names would
 * never arrive.
 */

export function pacScript(proxy: string): string {
  return `// svp: send Serval mesh names through ${proxy}, everything else direct.
function FindProxyForURL(url, host) {
  var h = host.toLowerCase();
  if (h.charAt(h.length - 1) == ".") h = h.substring(0, h.length - 1);
  if (h == "serval" || dnsDomainIs(h, ".serval") || /^[0-9a-f]{64}$/.test(h)) {
    return "PROXY ${proxy}";
  }
  return "DIRECT";
}
`;
}
