// Types for the part of mailauth (4.x: its 5.x needs Node 22) that mta-sts.ts uses: RFC 8461
// policy parsing and MX matching. mailauth ships JavaScript only.
declare module 'mailauth/lib/mta-sts.js' {
  export interface StsPolicy {
    version: string;
    mode: 'enforce' | 'testing' | 'none';
    maxAge: number;
    mx?: string[];
  }
  /** Parses a policy file; throws (err.code invalid_sts_*) on a bad one. */
  export function parsePolicy(file: string | Buffer): StsPolicy;
  /** Checks an MX host name against the policy's mx patterns ("*.example.com" included). */
  export function validateMx(mx: string, policy: StsPolicy): { valid: boolean; mode: string; match?: string; testing: boolean };
}
