// Policy delegation client (check_policy_service): the protocol client and the request builder.
export { PolicyClient, parseEndpoint, encodeRequest, type PolicyServiceOptions, type PolicyAnswer } from './client.js';
export { policyAttributes, type PolicySession, type PolicyStage } from './attributes.js';
export { parsePolicySpec, policyOptions, type PolicySpec, type PolicyDefaults } from './spec.js';
