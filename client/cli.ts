#!/usr/bin/env node
console.log("edgepager CLI: not yet");
