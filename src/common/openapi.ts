import type { OpenAPIObject } from '@nestjs/swagger';
import type { RequestBodyObject } from '@nestjs/swagger/dist/interfaces/open-api-spec.interface';

/**
 * The validation pipe refuses unknown body fields, so every request body schema is closed
 * (`additionalProperties: false`); @nestjs/swagger has no decorator for that.
 */
export function closeRequestBodies(document: OpenAPIObject): OpenAPIObject {
  for (const item of Object.values(document.paths)) {
    for (const operation of [item.post, item.put, item.patch]) {
      const schema = (operation?.requestBody as RequestBodyObject | undefined)?.content[
        'application/json'
      ]?.schema;
      if (!schema || !('$ref' in schema)) continue;
      const name = schema.$ref.slice('#/components/schemas/'.length);
      Object.assign(document.components?.schemas?.[name] ?? {}, { additionalProperties: false });
    }
  }
  return document;
}
