// Mail addresses as Postfix's global/ sees them, written once for every module: the domain is
// what follows the last '@', compared in lower case and without a trailing dot (Postfix's
// address rewriting strips it before anything looks at the domain), so the queue manager, the
// verify service and the restriction engine always agree on which destination an address has.

/** `User@Example.ORG.` → `example.org`; '' for an address without '@' (and the null sender). */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase().replace(/\.$/, '');
}
